//! What a registry lists and whether it lets us in: tags (every page) and login.

use super::transport::{Method, header, read_limited};
use super::{Client, RegistryError};
use crate::reference::Reference;

/// The largest page of a tag listing read (100 tags of the longest kind are 13 KiB; a
/// registry that ignores `n` and sends every tag of a big repository still fits).
const MAX_TAG_PAGE: u64 = 4 << 20;

/// The longest tag (the distribution spec's limit).
const MAX_TAG_LEN: usize = 128;

impl Client {
    /// Every tag of `r`'s repository, following `Link` pagination to the end: at most
    /// [`ClientOptions::max_tag_pages`](super::ClientOptions) pages of at most 4 MiB,
    /// and [`ClientOptions::max_tags`](super::ClientOptions) tags in all.
    pub fn tags(&self, r: &Reference) -> Result<Vec<String>, RegistryError> {
        let options = &self.transport.options;
        let too_large = |what: String| RegistryError::TooLarge {
            action: "list the tags of",
            reference: r.to_string(),
            what,
        };
        // 100 per page: what most registries cap a page at anyway.
        let mut url = format!("{}/tags/list?n=100", self.transport.base(r));
        let mut tags = Vec::new();
        // Bounded: a registry that links back to a page it already gave is cut off (each
        // page kept as its digest: a page's URL may be long, there may be many).
        let mut seen = std::collections::HashSet::new();
        for _ in 0..options.max_tag_pages {
            if !seen.insert(wasmoci_spec::Digest::of(url.as_bytes())) {
                return Err(RegistryError::Status {
                    action: "list the tags of",
                    reference: r.to_string(),
                    status: 200,
                    detail: format!("the pages loop back to `{url}`"),
                });
            }
            let mut response =
                self.transport
                    .send_idempotent(r, "pull", Method::GET, &url, &mut |req| req.call())?;
            if !response.status().is_success() {
                return Err(self.transport.status_error(r, "list the tags of", response));
            }
            let next = header(&response, "link").and_then(|l| next_link(&l));
            let bytes = read_limited(
                r,
                &mut response,
                MAX_TAG_PAGE,
                "list the tags of",
                "a page of the listing",
            )?;
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Status {
                    action: "list the tags of",
                    reference: r.to_string(),
                    status: 200,
                    detail: format!("the answer is not JSON: {e}"),
                })?;
            for tag in body["tags"].as_array().into_iter().flatten() {
                let Some(tag) = tag.as_str() else { continue };
                if tag.len() > MAX_TAG_LEN {
                    return Err(too_large(format!(
                        "the registry listed a tag of {} bytes (a tag has at most {MAX_TAG_LEN})",
                        tag.len()
                    )));
                }
                if tags.len() == options.max_tags {
                    return Err(too_large(format!(
                        "the listing has more tags than the limit of {}",
                        options.max_tags
                    )));
                }
                tags.push(tag.to_owned());
            }
            match next {
                Some(next) => url = self.transport.resolve(r, next),
                None => return Ok(tags),
            }
        }
        Err(too_large(format!(
            "the listing has more pages than the limit of {}",
            options.max_tag_pages
        )))
    }

    /// The registry configuration a package domain publishes, as wkg reads it:
    /// `GET https://DOMAIN/.well-known/wasm-pkg/registry.json` (plain HTTP only where a
    /// registry at `DOMAIN` would be: loopback, or `--plain-http`), at most 64 KiB. `at`
    /// is any reference on `DOMAIN`: its host decides the scheme and the address rules.
    pub fn well_known(&self, at: &Reference) -> Result<Vec<u8>, RegistryError> {
        let url = format!(
            "{}/.well-known/wasm-pkg/registry.json",
            self.transport.origin(at)
        );
        let mut response = self
            .transport
            .send_idempotent(at, "pull", Method::GET, &url, &mut |req| req.call())
            .map_err(|e| for_registry(e, &at.registry))?;
        if !response.status().is_success() {
            let e = self
                .transport
                .status_error(at, "discover the registry of", response);
            return Err(for_registry(e, &at.registry));
        }
        read_limited(
            at,
            &mut response,
            64 << 10,
            "discover the registry of",
            "its `registry.json`",
        )
    }

    /// Checks that the registry accepts our credentials (`GET /v2/`, authenticated for
    /// `r`, a repository of that registry). `Ok(false)`: the registry asked for none, so
    /// they were not checked. Errors name the registry, not `r`.
    pub fn check_login(&self, r: &Reference) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/", self.transport.origin(r));
        let response = self
            .transport
            .send(r, "pull", Method::GET, &url, &mut |req| req.call())
            .map_err(|e| for_registry(e, &r.registry))?;
        if !response.status().is_success() {
            let e = self.transport.status_error(r, "log in to", response);
            return Err(for_registry(e, &r.registry));
        }
        Ok(self.transport.authorized(r, "pull"))
    }
}

/// `e` about `registry`, not the repository it was asked for through.
fn for_registry(mut e: RegistryError, registry: &str) -> RegistryError {
    match &mut e {
        RegistryError::NotFound { reference, .. }
        | RegistryError::Denied { reference, .. }
        | RegistryError::Unauthorized { reference, .. }
        | RegistryError::Status { reference, .. } => *reference = registry.to_owned(),
        _ => {}
    }
    e
}

/// The target of `<…>; rel="next"` in a `Link` header.
pub(super) fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=100>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=100")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
