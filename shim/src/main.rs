//! `containerd-shim-wasmoci-v1`: containerd runs it for the `io.containerd.wasmoci.v1`
//! runtime (the `wasmoci` RuntimeClass).

fn main() {
    containerd_shim_wasmoci::main();
}
