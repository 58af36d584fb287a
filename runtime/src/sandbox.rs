//! What a guest may touch. Nothing unless granted.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::{Error, Result};

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Read-only.
    pub read_only: bool,
}

impl std::str::FromStr for DirGrant {
    type Err = String;

    /// `HOST[::GUEST][:ro]`, as `wasmtime run --dir`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (text, read_only) = match text.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let (host, guest) = match text.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (text, text),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "invalid directory grant `{text}`: expected `HOST[::GUEST][:ro]`"
            ));
        }
        Ok(DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only,
        })
    }
}

/// Outbound network access (`wasi:sockets`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkGrant {
    /// No sockets, no name lookups (the default).
    #[default]
    None,
    /// Any address, and name lookups.
    All,
    /// Only these addresses (any port when the port is `None`).
    Allow(Vec<(IpAddr, Option<u16>)>),
}

/// Everything the guest sees of the host.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// `argv`, the program name first.
    pub args: Vec<String>,
    /// Environment variables: only these.
    pub env: Vec<(String, String)>,
    /// Preopened directories: only these.
    pub dirs: Vec<DirGrant>,
    /// Outbound network.
    pub network: NetworkGrant,
    /// The function a core module is started with instead of `_start` (the `#func` of
    /// runwasi's `path#func`); components run `wasi:cli/run` and ignore it.
    pub entry: Option<String>,
}

impl Sandbox {
    /// A `WasiCtxBuilder` with these grants (stdio is the caller's business).
    pub(crate) fn wasi(&self) -> Result<WasiCtxBuilder> {
        let mut builder = WasiCtxBuilder::new();
        builder.args(&self.args);
        for (key, value) in &self.env {
            builder.env(key, value);
        }
        for dir in &self.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            builder
                .preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| Error::Preopen {
                    path: dir.host.clone(),
                    reason: crate::error::wasmtime_message(&e),
                })?;
        }
        match &self.network {
            NetworkGrant::None => {
                builder
                    .allow_tcp(false)
                    .allow_udp(false)
                    .allow_ip_name_lookup(false);
            }
            NetworkGrant::All => {
                builder
                    .inherit_network()
                    .allow_tcp(true)
                    .allow_udp(true)
                    .allow_ip_name_lookup(true);
            }
            NetworkGrant::Allow(list) => {
                let list = list.clone();
                builder
                    .allow_tcp(true)
                    .allow_udp(true)
                    .allow_ip_name_lookup(false)
                    .socket_addr_check(move |addr: SocketAddr, usage| {
                        let allowed = match usage {
                            // The implicit bind a connect makes: the wildcard address.
                            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                                addr.ip().is_unspecified() && addr.port() == 0
                            }
                            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => {
                                list.iter().any(|(ip, port)| {
                                    *ip == addr.ip() && port.is_none_or(|p| p == addr.port())
                                })
                            }
                            // Listening is inbound: an outbound allow-list does not grant it.
                            _ => false,
                        };
                        Box::pin(async move { allowed })
                    });
            }
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dir_grants() {
        let g: DirGrant = "data::/data:ro".parse().unwrap();
        assert_eq!(
            g,
            DirGrant {
                host: "data".into(),
                guest: "/data".into(),
                read_only: true
            }
        );
        let g: DirGrant = "/tmp".parse().unwrap();
        assert_eq!((g.guest.as_str(), g.read_only), ("/tmp", false));
        assert!("::x".parse::<DirGrant>().is_err());
    }
}
