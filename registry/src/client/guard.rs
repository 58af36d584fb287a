//! Where a client may connect: a filter on every address it resolves, for every request
//! (redirects and token realms included) and at connect time (a name that resolves to
//! another address on the second lookup gains nothing). The shim's direct pulls use it to
//! keep a pod from pointing the node at itself.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Says why a client may not connect to an address (`None`: it may).
#[derive(Clone)]
pub struct AddressFilter(Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>);

impl AddressFilter {
    /// A filter from `refuse`, which says why an address is refused.
    pub fn new(refuse: impl Fn(IpAddr) -> Option<String> + Send + Sync + 'static) -> Self {
        AddressFilter(Arc::new(refuse))
    }
}

impl fmt::Debug for AddressFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddressFilter(…)")
    }
}

/// The default resolver, then the filter on each address it found.
#[derive(Debug)]
pub(super) struct Guarded {
    inner: DefaultResolver,
    filter: AddressFilter,
}

impl Guarded {
    pub(super) fn new(filter: AddressFilter) -> Self {
        Guarded {
            inner: DefaultResolver::default(),
            filter,
        }
    }
}

impl Resolver for Guarded {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        for addr in addrs.iter() {
            if let Some(why) = (self.filter.0)(addr.ip()) {
                return Err(ureq::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "`{}` is `{}`, {why}: not connecting",
                        uri.host().unwrap_or_default(),
                        addr.ip()
                    ),
                )));
            }
        }
        Ok(addrs)
    }
}
