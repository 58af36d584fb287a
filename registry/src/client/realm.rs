//! The token service a Bearer challenge names (`realm`): which ones we go to, whether
//! our credentials may go along, and its URL with the query parameters encoded.

/// A `realm` we may ask for a token.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Realm {
    url: String,
    /// Over TLS, or on this machine: the credentials may go there (Basic, or the
    /// identity token); else they would cross the network in clear text.
    pub(super) private: bool,
}

impl Realm {
    /// Checks `realm`: `https`, or `http` when the registry itself was reached in plain
    /// HTTP on loopback (or with `--plain-http`, `plain_ok`); why not otherwise.
    pub(super) fn check(realm: &str, plain_ok: bool) -> Result<Realm, String> {
        let (tls, rest) = if let Some(rest) = strip_scheme(realm, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_scheme(realm, "http://") {
            (false, rest)
        } else {
            return Err("it is not an `https` URL".into());
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err("it names no host, or a user in it".into());
        }
        if realm.contains(['#', ' ', '\n', '\r', '\t']) {
            return Err("it holds a fragment or white space".into());
        }
        if !tls && !plain_ok {
            return Err(
                "it is plain HTTP: a token service must be `https` unless the registry itself is plain-HTTP loopback"
                    .into(),
            );
        }
        Ok(Realm {
            url: realm.to_owned(),
            private: tls || crate::reference::is_loopback_host(authority),
        })
    }

    /// The realm as given (for the form `POST` of an identity token).
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The realm with `params` added to its query, each key and value percent-encoded.
    pub(super) fn with_query(&self, params: &[(&str, &str)]) -> String {
        let mut url = self.url.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (key, value) in params {
            url.push(sep);
            url.push_str(&encode(key));
            url.push('=');
            url.push_str(&encode(value));
            sep = '&';
        }
        url
    }
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    url.get(..scheme.len())
        .filter(|s| s.eq_ignore_ascii_case(scheme))
        .map(|_| &url[scheme.len()..])
}

/// Percent-encodes all but the unreserved characters (RFC 3986).
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_for_a_plain_loopback_registry() {
        let r = Realm::check("https://auth.example/token", false).unwrap();
        assert!(r.private);
        let refused = Realm::check("http://auth.example/token", false).unwrap_err();
        assert!(refused.contains("plain HTTP"), "{refused}");
        let r = Realm::check("http://auth.example/token", true).unwrap();
        assert!(!r.private, "plain HTTP to another host");
        assert!(
            Realm::check("http://127.0.0.1:5000/token", true)
                .unwrap()
                .private
        );
        assert!(
            Realm::check("http://[::1]:5000/token", true)
                .unwrap()
                .private
        );
        for bad in [
            "file:///etc/passwd",
            "ftp://x/t",
            "https://u:p@x/t",
            "https:///t",
            "/token",
        ] {
            assert!(Realm::check(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_parameters_are_encoded() {
        let r = Realm::check("https://auth.example/token?x=1", false).unwrap();
        assert_eq!(
            r.with_query(&[
                ("scope", "repository:a/b:pull,push&scope=x"),
                ("service", "reg example#1")
            ]),
            "https://auth.example/token?x=1&scope=repository%3Aa%2Fb%3Apull%2Cpush%26scope%3Dx&service=reg%20example%231"
        );
    }
}
