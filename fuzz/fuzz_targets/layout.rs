//! `cargo fuzz run layout`; built without cargo-fuzz, replays the files it is given.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmoci_fuzz::layout(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    wasmoci_fuzz::replay_main("layout")
}
