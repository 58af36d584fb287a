//! What a pod may make the shim pull (`wasmoci.dev/image`): the shim runs as root on the
//! node, so a pod's annotation must not turn it into a client of the node itself or of the
//! node's registries with the node's credentials.
//!
//! The node's configuration is two variables of containerd's environment (the shim
//! inherits it), until the node policy of the supply-chain work replaces them:
//! - `WASMOCI_NODE_CREDENTIALS_FOR`: repositories (`ghcr.io/acme/app`, `ghcr.io/acme/*`)
//!   whose pulls may use the node's credentials (its per-host variables, docker's
//!   `config.json`). Default: none, every direct pull is anonymous.
//! - `WASMOCI_NODE_INSECURE_REGISTRIES`: registries (`host:port`) that may be on loopback,
//!   link-local or this node's own addresses (a registry on the node itself, a mirror);
//!   on loopback they talk plain HTTP, as every wasmoci client does there. Default: none.
//!
//! Every other registry must resolve to addresses that are not loopback, link-local,
//! unspecified or the node's own, and is talked to over TLS only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use wasmoci_registry::Reference;
use wasmoci_registry::client::AddressFilter;

/// The variable naming the repositories that may use the node's credentials.
pub(crate) const CREDENTIALS_FOR: &str = "WASMOCI_NODE_CREDENTIALS_FOR";
/// The variable naming the registries exempt from the address and TLS rules.
pub(crate) const INSECURE_REGISTRIES: &str = "WASMOCI_NODE_INSECURE_REGISTRIES";

/// A direct pull the node's rules do not allow.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullRefused {
    /// The registry is the node, or next to it.
    #[error(
        "failed to pull `{reference}`: `{registry}` is {what} (`{addr}`); a node pulls only from other hosts unless `{INSECURE_REGISTRIES}` names the registry"
    )]
    Address {
        reference: String,
        registry: String,
        addr: IpAddr,
        what: &'static str,
    },
    /// The registry's name does not resolve.
    #[error("failed to resolve the registry of `{reference}`")]
    Resolve {
        reference: String,
        #[source]
        error: std::io::Error,
    },
}

/// The node's rules for direct pulls.
#[derive(Debug, Default, Clone)]
pub(crate) struct PullPolicy {
    credentials_for: Vec<String>,
    insecure: Vec<String>,
    node: Option<wasmoci_spec::node_policy::NodePolicy>,
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl PullPolicy {
    /// The rules in this process's environment.
    pub(crate) fn from_env() -> PullPolicy {
        let var = |name| std::env::var(name).unwrap_or_default();
        PullPolicy::new(&var(CREDENTIALS_FOR), &var(INSECURE_REGISTRIES))
    }

    /// The rules in this process's environment, and the node policy's `[direct-pull]`:
    /// its repositories use the node's credentials when it says `credentials = "node"`,
    /// its insecure registries are exempt.
    pub(crate) fn from_env_and(policy: &wasmoci_spec::node_policy::NodePolicy) -> PullPolicy {
        let mut rules = PullPolicy::from_env();
        rules
            .insecure
            .extend(policy.insecure_registries.iter().cloned());
        rules.node = Some(policy.clone());
        rules
    }

    /// The rules from the two lists (comma-separated).
    pub(crate) fn new(credentials_for: &str, insecure: &str) -> PullPolicy {
        PullPolicy {
            credentials_for: list(credentials_for),
            insecure: list(insecure),
            node: None,
        }
    }

    /// Whether a pull of `reference` may use the node's credentials.
    pub(crate) fn credentials(&self, reference: &Reference) -> bool {
        let repository = reference.repository_path();
        if self
            .node
            .as_ref()
            .is_some_and(|node| node.direct_pull_credentials_for(&repository))
        {
            return true;
        }
        self.credentials_for
            .iter()
            .any(|pattern| match pattern.strip_suffix("/*") {
                Some(prefix) => repository.starts_with(&format!("{prefix}/")),
                None => *pattern == repository,
            })
    }

    /// Whether `reference`'s registry is exempt from the address and TLS rules.
    pub(crate) fn insecure(&self, reference: &Reference) -> bool {
        self.insecure.contains(&reference.registry)
    }

    /// What the client may connect to for `reference`: for a registry that is not exempt,
    /// no address [`check`](Self::check) refuses, on every request and at connect time
    /// (redirects, token realms, a name that resolves differently the second time), and
    /// only over TLS.
    pub(crate) fn address_filter(
        &self,
        reference: &Reference,
        own: Vec<IpAddr>,
    ) -> Option<AddressFilter> {
        (!self.insecure(reference))
            .then(|| AddressFilter::new(move |addr| forbidden(addr, &own).map(str::to_owned)))
    }

    /// Refuses `reference` unless its registry is exempt or resolves only to addresses
    /// that are not the node's (`own`) or next to it.
    pub(crate) fn check(&self, reference: &Reference, own: &[IpAddr]) -> Result<(), PullRefused> {
        if self.insecure(reference) {
            return Ok(());
        }
        let host_port = if reference.registry.contains(':') && !reference.registry.starts_with('[')
        {
            reference.registry.clone()
        } else {
            format!("{}:443", reference.registry)
        };
        let addrs: Vec<IpAddr> = host_port
            .to_socket_addrs()
            .map_err(|error| PullRefused::Resolve {
                reference: reference.to_string(),
                error,
            })?
            .map(|a| a.ip())
            .collect();
        for addr in addrs {
            if let Some(what) = forbidden(addr, own) {
                return Err(PullRefused::Address {
                    reference: reference.to_string(),
                    registry: reference.registry.clone(),
                    addr,
                    what,
                });
            }
        }
        Ok(())
    }
}

/// Why `addr` is not a registry a pod may send the node to.
fn forbidden(addr: IpAddr, own: &[IpAddr]) -> Option<&'static str> {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let link_local = match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    // Cloud metadata services outside the link-local range: AWS's IPv6 one, Alibaba's.
    let metadata = [
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
        IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    ];
    if addr.is_loopback() {
        Some("loopback")
    } else if metadata.contains(&addr) {
        Some("a cloud's metadata service")
    } else if addr.is_unspecified() {
        Some("unspecified")
    } else if link_local {
        Some("link-local (a cloud's metadata service lives there)")
    } else if own.contains(&addr) {
        Some("one of this node's own addresses")
    } else {
        None
    }
}

/// This node's addresses (every interface's).
pub(crate) fn own_addresses() -> Vec<IpAddr> {
    let addrs = match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs,
        Err(e) => {
            log::warn!(
                "failed to list this node's addresses ({e}): direct pulls are checked without them"
            );
            return Vec::new();
        }
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Reference {
        text.parse().unwrap()
    }

    #[test]
    fn the_node_and_its_neighbours_are_refused() {
        let none = PullPolicy::default();
        let own: Vec<IpAddr> = vec!["10.0.0.7".parse().unwrap()];
        for (text, what) in [
            ("127.0.0.1:5000/a/b:1", "loopback"),
            ("localhost:5000/a/b", "loopback"),
            ("169.254.169.254/latest/meta", "link-local"),
            ("0.0.0.0:5000/a/b", "unspecified"),
            ("10.0.0.7:5000/a/b", "this node's own"),
        ] {
            let err = none.check(&reference(text), &own).unwrap_err().to_string();
            assert!(err.contains(what), "{text}: {err}");
            assert!(err.contains(INSECURE_REGISTRIES), "{err}");
        }
        assert!(none.check(&reference("10.0.0.8:5000/a/b"), &own).is_ok());
        assert!(none.check(&reference("100.100.100.200/a/b"), &own).is_err());
        // The same rule at connect time, for redirects and realms.
        let filter = none.address_filter(&reference("ghcr.io/a/b:1"), own.clone());
        assert!(filter.is_some());
        let exempt_filter = PullPolicy::new("", "127.0.0.1:5000")
            .address_filter(&reference("127.0.0.1:5000/a/b"), own.clone());
        assert!(exempt_filter.is_none());
        let exempt = PullPolicy::new("", "127.0.0.1:5000, other:1");
        assert!(exempt.check(&reference("127.0.0.1:5000/a/b"), &own).is_ok());
        assert!(
            exempt
                .check(&reference("127.0.0.1:5001/a/b"), &own)
                .is_err()
        );
    }

    #[test]
    fn credentials_only_for_the_repositories_named() {
        let policy = PullPolicy::new("ghcr.io/acme/*, registry.example/team/app", "");
        assert!(policy.credentials(&reference("ghcr.io/acme/app:1")));
        assert!(policy.credentials(&reference("ghcr.io/acme/x/y:1")));
        assert!(!policy.credentials(&reference("ghcr.io/acmeevil/app:1")));
        assert!(policy.credentials(&reference("registry.example/team/app:2")));
        assert!(!policy.credentials(&reference("registry.example/team/other:1")));
        assert!(!PullPolicy::default().credentials(&reference("ghcr.io/acme/app:1")));
    }
}
