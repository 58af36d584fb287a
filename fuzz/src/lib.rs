//! The fuzz targets: one function for each kind of input wasmoci takes from someone it
//! does not trust (a registry, a layout on disk, a project file, a pod spec), calling the
//! same functions the commands and the shim call. `cargo fuzz run <target>` drives them
//! with libFuzzer (`fuzz_targets/`); the test below replays every seed and every
//! regression input through them on stable Rust, so CI never needs nightly or libFuzzer.
//!
//! A target panics only where wasmoci would: any panic, hang or runaway allocation it
//! finds is a bug, and its input goes into `regressions/<target>/` with the fix.

use std::path::{Path, PathBuf};

mod inputs;
mod layout;

pub use inputs::{
    bundle, lock, manifest, node_policy, project, reference, wac, wasm, www_authenticate,
};
pub use layout::layout;

/// A fuzz target: its name (the `cargo fuzz` target), the function, and where its seeds
/// come from.
pub struct Target {
    /// The name `cargo fuzz run` takes.
    pub name: &'static str,
    /// The function the fuzzer feeds.
    pub run: fn(&[u8]),
    /// Seed files: (a directory under the repository, the file names it takes there,
    /// searched recursively). `.wat` files are compiled to wasm first.
    pub seeds: &'static [(&'static str, &'static [&'static str])],
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "manifest",
        run: manifest,
        seeds: &[(
            "testdata/spec",
            &["manifest.json", "config.json", "index.json"],
        )],
    },
    Target {
        name: "wasm",
        run: wasm,
        seeds: &[("testdata/wat", &[".wat"]), ("testdata/spec", &[".wat"])],
    },
    Target {
        name: "reference",
        run: reference,
        seeds: &[],
    },
    Target {
        name: "project",
        run: project,
        seeds: &[
            ("testdata/example", &["wasmoci.toml"]),
            ("testdata/cli/projects", &["wasmoci.toml"]),
        ],
    },
    Target {
        name: "lock",
        run: lock,
        seeds: &[],
    },
    Target {
        name: "www_authenticate",
        run: www_authenticate,
        seeds: &[],
    },
    Target {
        name: "layout",
        run: layout,
        seeds: &[],
    },
    Target {
        name: "bundle",
        run: bundle,
        seeds: &[],
    },
    Target {
        name: "node_policy",
        run: node_policy,
        seeds: &[],
    },
    Target {
        name: "wac",
        run: wac,
        seeds: &[],
    },
];

/// The repository's root (this crate is `fuzz/` in it).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_owned()
}

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The inputs to replay for `target`, with where each came from: its seeds from
/// `testdata/` and `deploy/`, the hand-written ones in `fuzz/seeds/<target>/`, and the
/// reproducers of fixed findings in `fuzz/regressions/<target>/`.
pub fn inputs(target: &Target) -> Vec<(PathBuf, Vec<u8>)> {
    let root = repository();
    let mut out = Vec::new();
    for (dir, names) in target.seeds {
        let mut found = Vec::new();
        walk(&root.join(dir), names, &mut found);
        found.sort();
        for path in found {
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("failed to read `{}`: {e}", path.display()));
            let bytes = if path.extension().is_some_and(|e| e == "wat") {
                match wat::parse_bytes(&bytes) {
                    Ok(wasm) => wasm.into_owned(),
                    // Some WAT is invalid on purpose: its text is a seed too.
                    Err(_) => bytes,
                }
            } else {
                bytes
            };
            out.push((path, bytes));
        }
    }
    for kind in ["seeds", "regressions"] {
        let dir = root.join("fuzz").join(kind).join(target.name);
        let mut found = Vec::new();
        walk(&dir, &[""], &mut found);
        found.sort();
        for path in found {
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("failed to read `{}`: {e}", path.display()));
            out.push((path, bytes));
        }
    }
    out
}

fn walk(dir: &Path, names: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, names, out);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && !name.starts_with('.')
            && names.iter().any(|n| name.ends_with(n))
        {
            out.push(path);
        }
    }
}

/// The `main` of a target binary built without cargo-fuzz: `<target> FILE…` replays the
/// files (a crash reproducer, say) on stable Rust; `<target> --seed-into DIR` writes the
/// target's seeds into DIR, the corpus `cargo fuzz run` starts from.
#[expect(
    clippy::print_stderr,
    reason = "a command line's status goes to stderr"
)]
pub fn replay_main(name: &str) -> std::process::ExitCode {
    let target = target(name).expect("the binary names a target");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, dir] if flag == "--seed-into" => {
            let dir = Path::new(dir);
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("error: failed to create `{}`: {e}", dir.display());
                return std::process::ExitCode::from(2);
            }
            for (i, (_, bytes)) in inputs(target).iter().enumerate() {
                let path = dir.join(format!("seed-{i:04}"));
                if let Err(e) = std::fs::write(&path, bytes) {
                    eprintln!("error: failed to write `{}`: {e}", path.display());
                    return std::process::ExitCode::from(2);
                }
            }
            std::process::ExitCode::SUCCESS
        }
        [] => {
            eprintln!("usage: {name} FILE… | {name} --seed-into DIR");
            std::process::ExitCode::from(2)
        }
        files => {
            for file in files {
                match std::fs::read(file) {
                    Ok(bytes) => {
                        (target.run)(&bytes);
                        eprintln!("{file}: ok");
                    }
                    Err(e) => {
                        eprintln!("error: failed to read `{file}`: {e}");
                        return std::process::ExitCode::from(2);
                    }
                }
            }
            std::process::ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed and every regression input of every target goes through its function
    /// without a panic (the regression corpora, on stable Rust).
    #[test]
    fn corpora_replay_without_a_panic() {
        let mut failed = Vec::new();
        for target in TARGETS {
            let inputs = inputs(target);
            assert!(
                !inputs.is_empty(),
                "the target `{}` has no seeds: add some under fuzz/seeds/{}/",
                target.name,
                target.name
            );
            for (path, bytes) in inputs {
                let run = target.run;
                if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                    failed.push(format!("{}: {}", target.name, path.display()));
                }
            }
        }
        assert!(
            failed.is_empty(),
            "inputs that panic:\n{}",
            failed.join("\n")
        );
    }

    /// The targets `cargo fuzz` builds are the targets listed here.
    #[test]
    fn every_target_has_a_binary() {
        let manifest = std::fs::read_to_string(repository().join("fuzz/Cargo.toml")).unwrap();
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{}\"", target.name)),
                "fuzz/Cargo.toml has no [[bin]] for `{}`",
                target.name
            );
        }
        let bins = manifest.matches("[[bin]]").count();
        assert_eq!(
            bins,
            TARGETS.len(),
            "fuzz/Cargo.toml's [[bin]]s and TARGETS differ"
        );
    }
}
