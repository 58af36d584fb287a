//! `plan()` on the bundles in `tests/bundles/`: each `<case>.json` is a `config.json` as
//! containerd writes it, and `<case>.plan` beside it is what the shim plans for it (or the
//! error it refuses it with). No root, no containerd. `WASMOCI_BLESS=1` rewrites the
//! expectations.

use std::path::Path;

use containerd_shim_wasmoci::bundle::Bundle;
use containerd_shim_wasmoci::plan::plan;

#[test]
fn bundles_plan_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bundles");
    let bless = std::env::var_os("WASMOCI_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "cases missing in `{}`", dir.display());
    let mut failed = Vec::new();
    for case in &cases {
        let bundle = Bundle::from_json(&std::fs::read(case).unwrap())
            .unwrap_or_else(|e| panic!("`{}`: {e}", case.display()));
        let actual = match plan(&bundle, Path::new("/run/containerd/bundle")) {
            Ok(plan) => format!("{plan:#?}\n"),
            Err(e) => format!("error: {e}\n"),
        };
        let expected_path = case.with_extension("plan");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failed.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "plans differ (WASMOCI_BLESS=1 to accept):\n{}",
        failed.join("\n")
    );
}
