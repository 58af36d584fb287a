//! The auth dance of a [`Transport`]: a 401 challenge answered with Basic credentials, or
//! with a Bearer token from the token service its realm names (checked first: see
//! `realm`), the answer read up to 1 MiB.

use std::collections::HashMap;

use base64::Engine as _;

use super::{Method, Transport, read_limited, transport_error};
use crate::auth::{Credential, CredentialSource};
use crate::client::RegistryError;
use crate::client::realm::Realm;
use crate::reference::Reference;

/// The largest token-service answer read (a token is a few KiB; a registry that sends
/// hundreds of MB is cut off).
const MAX_TOKEN_ANSWER: u64 = 1 << 20;

impl Transport {
    /// The `Authorization` that answers `challenge`: Basic from the credential, or a
    /// Bearer token the token service hands out for it.
    pub(super) fn authorize(
        &self,
        r: &Reference,
        actions: &str,
        challenge: &str,
        credential: &Credential,
        source: &CredentialSource,
    ) -> Result<String, RegistryError> {
        let unauthorized = |detail: &str| RegistryError::Unauthorized {
            reference: r.to_string(),
            source_of: source.clone(),
            detail: detail.to_owned(),
        };
        let basic = match credential {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            _ => None,
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.is_empty() {
            return Err(unauthorized(
                "the registry answered 401 without a challenge",
            ));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return basic
                .ok_or_else(|| unauthorized("the registry asks for a user name and password"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(&format!(
                "unsupported challenge `{challenge}`"
            )));
        }
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| unauthorized("the Bearer challenge has no realm"))?;
        // Plain HTTP to a token service only when the registry itself was reached so on
        // this machine (or with `--plain-http`): a registry must not send us, or our
        // credentials, elsewhere in clear text.
        let plain_ok =
            self.origin(r).starts_with("http://") && (r.is_loopback() || self.options.plain_http);
        let checked =
            Realm::check(realm, plain_ok).map_err(|reason| RegistryError::UnsafeRealm {
                reference: r.to_string(),
                realm: realm.clone(),
                reason,
            })?;
        // `actions` may ask for more repositories: `pull,push&scope=repository:x:pull`.
        let mut scopes = actions.split("&scope=");
        let mut scope = vec![format!(
            "repository:{}:{}",
            r.repository,
            scopes.next().unwrap_or_default()
        )];
        scope.extend(scopes.map(str::to_owned));
        let mut query: Vec<(&str, &str)> = scope.iter().map(|s| ("scope", s.as_str())).collect();
        if let Some(service) = params.get("service") {
            query.push(("service", service.as_str()));
        }
        let url = checked.with_query(&query);
        let anonymous = matches!(credential, Credential::Anonymous);
        if !checked.private && !anonymous {
            self.note(&format!(
                "not sending {source} to the token service `{realm}` of `{}`: it is plain HTTP to another host",
                r.registry
            ));
        }
        let mut response = match credential {
            // Docker's identity token is an OAuth2 refresh token: POST it in a form body
            // (never in a URL, where servers and proxies log it).
            Credential::IdentityToken(token) if checked.private => {
                let scope = scope.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "wasmoci"),
                    ("refresh_token", token.expose()),
                    ("scope", scope.as_str()),
                ];
                if let Some(service) = params.get("service") {
                    form.push(("service", service.as_str()));
                }
                self.agent
                    .post(checked.url())
                    .send_form(form)
                    .map_err(|e| transport_error(r, e))?
            }
            // The token service may be another host: the Basic credential goes there on
            // purpose (that is how it knows who asks), but only where no one can read it.
            _ => {
                let basic = basic.as_deref().filter(|_| checked.private);
                self.request(Method::GET, &url, basic)
                    .call()
                    .map_err(|e| transport_error(r, e))?
            }
        };
        if !response.status().is_success() {
            return Err(unauthorized(&format!(
                "the token service at `{realm}` answered {}",
                response.status().as_u16()
            )));
        }
        let bytes = read_limited(
            r,
            &mut response,
            MAX_TOKEN_ANSWER,
            "read the token for",
            &format!("the answer of `{realm}`"),
        )?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            unauthorized(&format!(
                "the token service answered something that is not JSON: {e}"
            ))
        })?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .ok_or_else(|| unauthorized("the token service answered no token"))?;
        Ok(format!("Bearer {token}"))
    }
}

/// What a fuzzer feeds the challenge handling: a `WWW-Authenticate` value, parsed as
/// [`Transport::authorize`] parses it, and, for a Bearer challenge whose realm passes
/// the same checks, the token URL it would ask (no request is made).
#[doc(hidden)]
pub fn token_url_for_challenge(challenge: &str, plain_ok: bool) -> Option<String> {
    let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_challenge(params);
    let realm = Realm::check(params.get("realm")?, plain_ok).ok()?;
    let mut query = vec![("scope", "repository:fuzz:pull")];
    if let Some(service) = params.get("service") {
        query.push(("service", service.as_str()));
    }
    Some(realm.with_query(&query))
}

/// `realm="…",service="…",scope="…"` into a map.
fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, r)) => (v.to_owned(), r),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, r)) => (v.trim().to_owned(), r),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(key, value);
        rest = remainder.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let p = parse_challenge(
            r#"realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }
}
