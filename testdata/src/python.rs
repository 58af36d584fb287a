//! Python components from a real third-party producer: componentize-py (PyPI), which
//! `.ci/install` puts in a virtualenv outside the repository
//! (`$WASMOCI_TOOLS_CACHE`, default `~/.cache/wasmoci-ci`, then `venv/bin/`). Built at
//! test time from `python/` and `wit/python/`, once per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where componentize-py is, when it is there. Under `CI=true` a missing one panics.
pub fn componentize_py() -> Option<PathBuf> {
    let tools = std::env::var_os("WASMOCI_TOOLS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wasmoci-ci")))?;
    let path = tools.join("venv/bin/componentize-py");
    crate::registry::require(path.to_str()?).then_some(path)
}

/// The Python plug (`py-plug.wasm`: greet(n) = n + 7) and middle (`py-middle.wasm`:
/// greet(n) = n + the logger's prefix), built into `dir`; `None` without componentize-py.
pub fn python_components(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    static BUILT: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let tool = componentize_py()?;
            std::fs::create_dir_all(dir).unwrap();
            let build = |world: &str, app: &str| {
                let out = dir.join(format!("py-{world}.wasm"));
                let done = Command::new(&tool)
                    .arg("-d")
                    .arg(crate::root().join("wit/python"))
                    .args(["-w", world, "componentize", "-p"])
                    .arg(crate::root().join("python").join(app))
                    .arg("app")
                    .arg("-o")
                    .arg(&out)
                    .output()
                    .expect("failed to run componentize-py");
                assert!(
                    done.status.success(),
                    "componentize-py failed on `{world}`: {}",
                    String::from_utf8_lossy(&done.stderr)
                );
                out
            };
            Some((build("plug", "plug"), build("middle", "middle")))
        })
        .clone()
}
