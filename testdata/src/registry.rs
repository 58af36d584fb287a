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
    /// With token auth: the token service.
    pub token_service: Option<crate::fake::FakeRegistry>,
    _dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files served over HTTPS ([`TestRegistry::serve_files`]), stopped on drop.
#[derive(Debug)]
pub struct FileServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for FileServer {
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
    /// `SIGKILL`s the registry (its storage stays), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same address and storage, after [`kill`]
    /// (bounded wait for it to answer).
    ///
    /// [`kill`]: TestRegistry::kill
    pub fn restart(&mut self) {
        self.kill();
        let config = self._dir.path().join("config.yml");
        for _ in 0..5 {
            if let Some(child) = serve(&config, &self.addr) {
                self.child = child;
                return;
            }
            // The port may still be held by the dying process: a moment, then again.
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("docker-registry did not restart on `{}`", self.addr);
    }

    /// Removes `repository:tag` and nothing else (its manifest stays, by digest), as an
    /// operator does on distribution 2.8, whose API deletes only whole manifests: the
    /// tag's directory in the registry's storage.
    pub fn delete_tag(&self, repository: &str, tag: &str) {
        let dir = self
            ._dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repository)
            .join("_manifests/tags")
            .join(tag);
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("failed to delete the tag `{}`: {e}", dir.display()));
    }

    /// Serves the files under `root` over HTTPS, with this (TLS) registry's certificate:
    /// `openssl s_server -WWW`, a real TLS server the clients must trust through the CA.
    pub fn serve_files(&self, root: &Path) -> FileServer {
        let (cert, key) = (
            self._dir.path().join("cert.pem"),
            self._dir.path().join("key.pem"),
        );
        assert!(
            cert.exists(),
            "`serve_files` needs a registry from `start_tls`"
        );
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let mut child = Command::new("openssl")
                .args(["s_server", "-WWW", "-quiet", "-accept", &addr, "-cert"])
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .current_dir(root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("`openssl` is installed by .ci/install");
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return FileServer { child, addr };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("`openssl s_server` did not start");
    }

    /// Starts a registry; with `basic_auth`, it requires that user and password.
    /// `None` when the registry is not installed (and this is not CI).
    pub fn start(basic_auth: Option<(&str, &str)>) -> Option<TestRegistry> {
        Self::start_with(basic_auth, false, None)
    }

    /// Starts a registry with token auth: a token service (run by this harness) hands out
    /// RS256 JWTs to `user`/`password`, for the scope asked, signed with a key whose
    /// certificate the registry trusts.
    pub fn start_token(user: &'static str, password: &'static str) -> Option<TestRegistry> {
        Self::start_with(None, false, Some((user, password)))
    }

    /// Starts a registry serving HTTPS with a self-signed certificate for 127.0.0.1.
    pub fn start_tls() -> Option<TestRegistry> {
        Self::start_with(None, true, None)
    }

    fn start_with(
        basic_auth: Option<(&str, &str)>,
        tls: bool,
        token_auth: Option<(&'static str, &'static str)>,
    ) -> Option<TestRegistry> {
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
            let mut token_service = None;
            if let Some((user, password)) = token_auth {
                let (service, bundle) = token::start(dir.path(), user, password);
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: wasmoci-test\n    issuer: wasmoci-test-issuer\n    rootcertbundle: {}\n",
                    service.addr,
                    bundle.display()
                ));
                token_service = Some(service);
            }
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
            if let Some(child) = serve(&config_path, &addr) {
                return Some(TestRegistry {
                    child,
                    addr,
                    certificate,
                    token_service,
                    _dir: dir,
                });
            }
        }
        panic!("docker-registry did not start");
    }
}

/// Starts docker-registry with `config` and waits (bounded) until it answers on `addr`;
/// `None` (it is stopped again) when it does not.
fn serve(config: &Path, addr: &str) -> Option<Child> {
    let mut child = Command::new(REGISTRY_BINARY)
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("failed to start docker-registry");
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if answers(addr) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
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

/// The token service of a token-auth registry.
mod token {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use base64::Engine as _;

    use crate::fake::{FakeRegistry, FakeResponse};

    fn b64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Starts the token service; returns it and the certificate bundle the registry
    /// trusts.
    pub(super) fn start(
        dir: &Path,
        user: &'static str,
        password: &'static str,
    ) -> (FakeRegistry, PathBuf) {
        let key = dir.join("token.key");
        let cert = dir.join("token.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=wasmoci test token issuer",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("`openssl` is installed by .ci/install");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let service = FakeRegistry::start(move |req| {
            if req.header("authorization") != Some(expected.as_str()) {
                return FakeResponse::new(401, r#"{"details":"bad credentials"}"#);
            }
            // scope=repository:NAME:ACTIONS, once per repository (a mount asks for two).
            let query = req.path.split_once('?').map_or("", |(_, q)| q);
            let access: Vec<serde_json::Value> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("scope="))
                .map(|scope| {
                    let scope = scope
                        .replace("%3A", ":")
                        .replace("%2C", ",")
                        .replace("%2F", "/");
                    let mut parts = scope.splitn(3, ':');
                    let (_, name, actions) = (
                        parts.next(),
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    );
                    serde_json::json!({
                        "type": "repository",
                        "name": name,
                        "actions": actions.split(',').filter(|a| !a.is_empty()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let name = access
                .first()
                .and_then(|a| a["name"].as_str())
                .unwrap_or_default()
                .to_owned();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [x5c] });
            let claims = serde_json::json!({
                "iss": "wasmoci-test-issuer",
                "sub": user,
                "aud": "wasmoci-test",
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": format!("{now}-{name}"),
                "access": access,
            });
            let input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let mut sign = Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut sign.stdin.take().unwrap(), input.as_bytes()).unwrap();
            let signature = sign.wait_with_output().unwrap().stdout;
            let token = format!("{input}.{}", b64url(&signature));
            FakeResponse::new(200, serde_json::json!({ "token": token }).to_string())
                .header("content-type", "application/json")
        });
        (service, cert)
    }
}
