//! Writes the test fixtures into a directory, for benchmarks and manual runs:
//! `cargo run -p wasmoci-testdata --example fixtures -- DIR`.

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "fixtures".into());
    let dir = wasmoci_testdata::build_fixtures(&dir);
    #[allow(clippy::print_stdout, reason = "the example prints where it wrote")]
    {
        println!("{}", dir.display());
    }
}
