//! Every `testdata/spec/<case>/` (manifest + config templates and their layers) is
//! validated and the violations compared with `expected.txt` beside them.
//! `WASMOCI_BLESS=1 cargo test -p wasmoci-spec` rewrites the expectations.

use std::fs;

use wasmoci_spec::validate;
use wasmoci_testdata::{spec_case, spec_cases};

#[test]
fn spec_cases_report_what_expected_txt_says() {
    let bless = std::env::var_os("WASMOCI_BLESS").is_some();
    let mut failures = Vec::new();
    let cases = spec_cases();
    assert!(cases.len() >= 10, "the spec cases are missing: {cases:?}");
    for name in cases {
        let case = spec_case(&name);
        let layers: Vec<&[u8]> = case.layers.iter().map(Vec::as_slice).collect();
        let violations = validate(&case.manifest, &case.config, &layers);
        let actual: String = violations.iter().map(|v| format!("{v}\n")).collect();
        let expected_path = case.dir.join("expected.txt");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
        // Cases named valid-* must conform; the others must not.
        assert_eq!(
            name.starts_with("valid-"),
            violations.is_empty(),
            "{name}: {violations:#?}"
        );
    }
    assert!(
        failures.is_empty(),
        "validation output changed (WASMOCI_BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}
