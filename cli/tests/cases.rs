//! File-driven CLI tests. A case file is a list of commands, each followed by what it
//! must do:
//!
//! ```text
//! # what the case is about
//! $ wasmoci build [FIXTURES]/hello.wasm --layout out --tag hello:1.0.0
//! ? 0
//! --- stdout
//! oci:out:hello:1.0.0@sha256:…
//! --- stderr
//! built `hello:1.0.0`: component (… bytes)
//! ```
//!
//! Commands run one after the other in a fresh directory, with `WASMOCI_HOME` in it and
//! `SOURCE_DATE_EPOCH=0`; `KEY=VALUE` words before the program set more variables. The
//! program is `wasmoci` (this build) or another one on `PATH` (`cat`, `sh`: to show a
//! file the steps wrote, or to prepare one).
//!
//! Placeholders in a command: `[FIXTURES]`, `[TESTDATA]`, `[PATH]` (the test's `PATH`);
//! `[REGISTRY]` (a real registry, docker-registry on 127.0.0.1, started for the case
//! file), `[TLS_REGISTRY]` (one serving HTTPS) and `[CA_FILE]` (the CA that signed its
//! certificate), `[AUTH_REGISTRY]` (one asking for Basic auth: user `wasmoci`, password
//! `secret`); `[CWD]`, the case directory. `< FILE` at the end of a command is its stdin
//! (`FILE` relative to the case directory). In the output, those directories, the case
//! directory and the registries' addresses read `[FIXTURES]`, `[TESTDATA]`, `[CWD]`,
//! `[REGISTRY]`, `[TLS_REGISTRY]` and `[AUTH_REGISTRY]`; in a file whose header has the
//! line `# digests: masked`, every `sha256:` digest reads `sha256:[DIGEST]` (for artifacts
//! that hold a registry's address). `WASMOCI_BLESS=1` rewrites the expectations; `#`
//! lines after a blank line just above a command are kept.

use std::fs;
use std::path::Path;

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{fixtures, wasmoci};

struct Step {
    /// `#` lines just above the command (after a blank line), kept when re-blessing.
    comment: String,
    command: String,
    expected: String,
}

/// The `#` lines that end `block` after its last blank line, taken off it.
fn take_comment(block: &mut String) -> String {
    let lines: Vec<&str> = block.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let tail = &lines[start..];
    if start == 0 || tail.is_empty() || !tail.iter().all(|l| l.starts_with('#')) {
        return String::new();
    }
    let comment = tail.iter().map(|l| format!("{l}\n")).collect();
    let kept: String = lines[..start].iter().map(|l| format!("{l}\n")).collect();
    *block = kept;
    comment
}

fn parse(text: &str) -> (String, Vec<Step>) {
    let mut header = String::new();
    let mut steps: Vec<Step> = Vec::new();
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            let comment = steps
                .last_mut()
                .map(|step| take_comment(&mut step.expected))
                .unwrap_or_default();
            steps.push(Step {
                comment,
                command: command.to_owned(),
                expected: String::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push_str(line);
            step.expected.push('\n');
        } else {
            header.push_str(line);
            header.push('\n');
        }
    }
    (header, steps)
}

/// The registries a case file's commands name, started on first use and stopped with it.
#[derive(Default)]
struct Registries {
    plain: Option<TestRegistry>,
    tls: Option<TestRegistry>,
    /// User `wasmoci`, password `secret`.
    auth: Option<TestRegistry>,
}

impl Registries {
    /// Starts what `commands` name. False when a registry is not installed (and this is
    /// not CI, where that fails): the case is skipped.
    fn start_for(&mut self, commands: &[&str]) -> bool {
        let names = |mark: &str| commands.iter().any(|c| c.contains(mark));
        if names("[REGISTRY]") && self.plain.is_none() {
            match TestRegistry::start(None) {
                Some(registry) => self.plain = Some(registry),
                None => return false,
            }
        }
        if names("[AUTH_REGISTRY]") && self.auth.is_none() {
            match TestRegistry::start(Some(("wasmoci", "secret"))) {
                Some(registry) => self.auth = Some(registry),
                None => return false,
            }
        }
        if (names("[TLS_REGISTRY]") || names("[CA_FILE]")) && self.tls.is_none() {
            match TestRegistry::start_tls() {
                Some(registry) => self.tls = Some(registry),
                None => return false,
            }
        }
        true
    }

    /// (placeholder, value) pairs, in the order commands are expanded.
    fn placeholders(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(registry) = &self.plain {
            pairs.push(("[REGISTRY]", registry.addr.clone()));
        }
        if let Some(registry) = &self.auth {
            pairs.push(("[AUTH_REGISTRY]", registry.addr.clone()));
        }
        if let Some(registry) = &self.tls {
            pairs.push(("[TLS_REGISTRY]", registry.addr.clone()));
            let ca = registry
                .certificate
                .as_ref()
                .expect("a TLS registry has a CA");
            pairs.push(("[CA_FILE]", ca.display().to_string()));
        }
        pairs
    }
}

/// `MARK` followed by `len` hex digits (and `end`, if any) reads `MARK` + `with`.
fn mask_hex(text: &str, mark: &str, len: usize, end: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(mark) {
        let (before, after) = rest.split_at(at + mark.len());
        out.push_str(before);
        let whole = len + end.len();
        let candidate = &after[..after.len().min(whole)];
        if candidate.len() == whole
            && candidate.ends_with(end)
            && candidate[..len].bytes().all(|b| b.is_ascii_hexdigit())
        {
            out.push_str(with);
            rest = &after[whole..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `sha256:` and 64 hex digits read `sha256:[DIGEST]`: for case files whose artifacts
/// hold a registry's address (its port differs every run), marked `# digests: masked`.
fn mask_digests(text: &str) -> String {
    mask_hex(text, "sha256:", 64, "", "[DIGEST]")
}

fn run_step(command: &str, cwd: &Path, registries: &Registries, masked: bool) -> String {
    let testdata = wasmoci_testdata::root();
    let mut expanded = command
        .replace("[FIXTURES]", &fixtures().display().to_string())
        .replace("[TESTDATA]", &testdata.display().to_string())
        .replace("[PATH]", &std::env::var("PATH").unwrap_or_default())
        .replace("[CWD]", &cwd.display().to_string());
    let placeholders = registries.placeholders();
    for (mark, value) in &placeholders {
        expanded = expanded.replace(mark, value);
    }
    let mut words = shlex::split(&expanded).unwrap_or_else(|| panic!("cannot split `{command}`"));
    let stdin = match words.as_slice() {
        [.., lt, file] if lt == "<" => {
            let file = cwd.join(file);
            words.truncate(words.len() - 2);
            Some(fs::File::open(&file).unwrap_or_else(|e| panic!("`{command}`: {e}")))
        }
        _ => None,
    };
    let at = words
        .iter()
        .position(|w| !w.contains('='))
        .unwrap_or_else(|| panic!("`{command}` runs no program"));
    let mut cmd = if words[at] == "wasmoci" {
        wasmoci(&cwd.join("home"))
    } else {
        std::process::Command::new(&words[at])
    };
    cmd.current_dir(cwd);
    for assignment in &words[..at] {
        let (key, value) = assignment
            .split_once('=')
            .unwrap_or_else(|| panic!("`{assignment}` is not KEY=VALUE"));
        cmd.env(key, value);
    }
    cmd.args(&words[at + 1..]);
    cmd.stdin(stdin.map_or_else(std::process::Stdio::null, Into::into));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to start `{}`: {e}", words[at]));
    // Longest first: one registry's address may begin another's.
    let mut by_length = placeholders.clone();
    by_length.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
    let filter = |bytes: &[u8]| {
        let mut text = String::from_utf8_lossy(bytes)
            .replace(&fixtures().display().to_string(), "[FIXTURES]")
            .replace(&testdata.display().to_string(), "[TESTDATA]")
            .replace(&cwd.display().to_string(), "[CWD]");
        for (mark, value) in &by_length {
            text = text.replace(value, mark);
        }
        let text = engine_keys(&text);
        if masked { mask_digests(&text) } else { text }
    };
    let code = out
        .status
        .code()
        .map_or_else(|| format!("{}", out.status), |c| c.to_string());
    let mut block = format!("? {code}\n--- stdout\n{}", filter(&out.stdout));
    if !block.ends_with('\n') {
        block.push('\n');
    }
    block.push_str("--- stderr\n");
    let stderr = filter(&out.stderr);
    block.push_str(&stderr);
    if !stderr.is_empty() && !stderr.ends_with('\n') {
        block.push('\n');
    }
    block
}

/// The compile cache directory is named after the engine's compatibility hash, which
/// depends on the host CPU: `compiled/<16 hex>/` reads `compiled/[ENGINE]/`.
fn engine_keys(text: &str) -> String {
    mask_hex(text, "/compiled/", 16, "/", "[ENGINE]/")
}

#[test]
fn cli_cases() {
    let bless = std::env::var_os("WASMOCI_BLESS").is_some();
    let dir = wasmoci_testdata::root().join("cli");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "the CLI cases are missing from `{}`",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let (header, steps) = parse(&text);
        let masked = header.lines().any(|l| l.trim() == "# digests: masked");
        let mut registries = Registries::default();
        let commands: Vec<&str> = steps.iter().map(|s| s.command.as_str()).collect();
        if !registries.start_for(&commands) {
            continue;
        }
        let cwd = tempfile::tempdir().unwrap();
        let mut rewritten = header;
        for step in &steps {
            let actual = run_step(&step.command, cwd.path(), &registries, masked);
            // Blank lines between steps are layout, not output.
            if step.expected.trim_end() != actual.trim_end() {
                failures.push(format!(
                    "{}: `$ {}`\n--- expected\n{}--- actual\n{}",
                    file.file_name().unwrap().to_string_lossy(),
                    step.command,
                    step.expected,
                    actual
                ));
            }
            rewritten.push_str(&format!("{}$ {}\n{actual}\n", step.comment, step.command));
        }
        if bless {
            fs::write(&file, rewritten.trim_end().to_owned() + "\n").unwrap();
        }
    }
    if !bless {
        assert!(
            failures.is_empty(),
            "{} step(s) differ (WASMOCI_BLESS=1 to accept):\n\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
