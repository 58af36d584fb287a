//! A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on
//! 127.0.0.1, with its own storage directory, optionally behind htpasswd Basic auth.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian installs the registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// A running registry, stopped on drop.
#[derive(Debug)]
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// With TLS: the PEM certificate of the CA that signed its certificate.
    pub certificate: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a real part is available. When it is not: under `CI=true` this panics (a CI
/// machine must have it: `.ci/install`); elsewhere it returns false and the test skips.
pub fn require(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "`{path}` is missing and CI=true: run `.ci/install`"
    );
    #[allow(clippy::print_stderr, reason = "a skipped test says why")]
    {
        eprintln!("skipping: `{path}` is missing (run `.ci/install`)");
    }
    false
}

impl TestRegistry {
    /// Starts a registry; with `basic_auth`, it requires that user and password.
    /// `None` when the registry is not installed (and this is not CI).
    pub fn start(basic_auth: Option<(&str, &str)>) -> Option<TestRegistry> {
        Self::start_with(basic_auth, false)
    }

    /// Starts a registry serving HTTPS with a self-signed certificate for 127.0.0.1.
    pub fn start_tls() -> Option<TestRegistry> {
        Self::start_with(None, true)
    }

    fn start_with(basic_auth: Option<(&str, &str)>, tls: bool) -> Option<TestRegistry> {
        if !require(REGISTRY_BINARY) {
            return None;
        }
        // The registry cannot report an ephemeral port, so pick a free one and retry if
        // another process takes it first (bounded).
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let mut config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            );
            if let Some((user, password)) = basic_auth {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("`htpasswd` (apache2-utils) is installed by .ci/install");
                assert!(out.status.success());
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: wasmoci-test\n    path: {}\n",
                    file.display()
                ));
            }
            let mut certificate = None;
            if tls {
                // A CA, and a certificate for 127.0.0.1 it signed: what the client trusts
                // is the CA (`certificate`), as with a private registry.
                let p = |name: &str| dir.path().join(name);
                let openssl = |args: &[&str]| {
                    let out = Command::new("openssl")
                        .args(args)
                        .current_dir(dir.path())
                        .output()
                        .expect("`openssl` is installed by .ci/install");
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                };
                std::fs::write(
                    p("leaf.ext"),
                    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
                )
                .unwrap();
                openssl(&[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=wasmoci test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ]);
                openssl(&[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "leaf.csr",
                ]);
                openssl(&[
                    "x509",
                    "-req",
                    "-in",
                    "leaf.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    "leaf.ext",
                    "-out",
                    "cert.pem",
                ]);
                // Under `http:`, right after its `addr`.
                config = config.replacen(
                    &format!("  addr: {addr}\n"),
                    &format!(
                        "  addr: {addr}\n  tls:\n    certificate: {}\n    key: {}\n",
                        p("cert.pem").display(),
                        p("key.pem").display()
                    ),
                    1,
                );
                certificate = Some(p("ca.pem"));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let mut child = Command::new(REGISTRY_BINARY)
                .arg("serve")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("failed to start docker-registry");
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if answers(&addr) {
                    return Some(TestRegistry {
                        child,
                        addr,
                        certificate,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }
}

fn answers(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
