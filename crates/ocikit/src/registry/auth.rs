//! Registry authentication: the `WWW-Authenticate` challenge, Basic auth, the
//! Bearer token flow (distribution's token spec, with `repository:NAME:ACTIONS`
//! scopes) and a per-registry token cache.
//!
//! A registry says how it wants to be authenticated in the challenge of its
//! 401 answer to `GET /v2/`. Basic means sending the credentials with every
//! request; Bearer means trading them (or nothing, for anonymous pulls) at the
//! `realm` for a short-lived token covering the scopes asked for. Tokens are
//! cached by scope until shortly before they expire, so a copy of many blobs
//! fetches one token per repository and action set.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::credentials::Credentials;

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send the credentials on every request.
    Basic,
    /// `Bearer realm=… service=… scope=…`: fetch a token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass along, if any.
        service: Option<String>,
        /// The scope the registry said it needs for the refused request.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value, returning the first challenge
/// ocikit can answer (Bearer preferred over Basic), or `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut challenges = parse_challenges(header);
    challenges.sort_by_key(|c| match c {
        Challenge::Bearer { .. } => 0,
        Challenge::Basic => 1,
    });
    challenges.into_iter().next()
}

/// All challenges in a header (RFC 7235: several may share one header, their
/// parameters separated by commas, quoted values may contain commas).
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',')
            .unwrap_or(rest.len());
        let scheme = rest[..end].to_ascii_lowercase();
        rest = rest[end..].trim_start_matches([',', ' ', '\t']);
        let mut params: HashMap<String, String> = HashMap::new();
        // Parameters: key=value or key="quoted", separated by commas, until a
        // token that is not followed by '=' (the next scheme).
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim();
            if key.is_empty() || key.contains([' ', ',', '\t']) {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut consumed = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            consumed = i + 1;
                            break;
                        }
                        other => value.push(other),
                    }
                }
                (value, &quoted[consumed..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            params.insert(key.to_ascii_lowercase(), value);
            rest = remaining.trim_start_matches([',', ' ', '\t']);
        }
        match scheme.as_str() {
            "basic" => out.push(Challenge::Basic),
            "bearer" => {
                if let Some(realm) = params.remove("realm") {
                    out.push(Challenge::Bearer {
                        realm,
                        service: params.remove("service"),
                        scope: params.remove("scope"),
                    });
                }
            }
            _ => {}
        }
        if scheme.is_empty() {
            break;
        }
    }
    out
}

/// The `Authorization` value for Basic auth.
pub fn basic_header(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.username, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// What a request needs to do in a repository, which decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read manifests, blobs, tags.
    Pull,
    /// Write (and read, which pushing needs for HEAD checks).
    Push,
    /// Delete manifests.
    Delete,
}

impl Access {
    /// The actions part of a scope.
    pub fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "delete",
        }
    }

    /// The word used in 403 messages.
    pub fn verb(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "push",
            Access::Delete => "delete",
        }
    }
}

/// A token scope for a repository: `repository:NAME:ACTIONS`.
pub fn repository_scope(repository: &str, access: Access) -> String {
    format!("repository:{repository}:{}", access.actions())
}

/// Tokens already fetched, by the space-joined scope list they were asked
/// for, each until a little before it expires.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    /// A cached, unexpired token for exactly these scopes.
    pub fn get(&self, scopes: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let (token, until) = tokens.get(scopes)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    /// Remembers a token valid for `lifetime` (10% and at least 5 s are kept
    /// as margin, so a token never expires in flight).
    pub fn insert(&self, scopes: &str, token: String, lifetime: Duration) {
        let margin = (lifetime / 10).max(Duration::from_secs(5));
        let until = Instant::now() + lifetime.saturating_sub(margin);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.insert(scopes.to_owned(), (token, until));
    }

    /// Forgets a token the registry refused.
    pub fn remove(&self, scopes: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.remove(scopes);
    }
}

/// The token endpoint's answer (distribution's token spec; `access_token` is
/// the OAuth2 spelling some registries use).
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    /// The token.
    #[serde(default)]
    pub token: Option<String>,
    /// The same, OAuth2 spelling.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in seconds (the spec's default is 60).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it lives.
    pub fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(60));
        Some((token, lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let cases: &[(&str, Option<Challenge>)] = &[
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/alpine:pull,push".into()),
                }),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            (r#"basic realm=x"#, Some(Challenge::Basic)),
            (
                r#"Basic realm="b", Bearer realm="http://127.0.0.1:1/token", service=svc"#,
                Some(Challenge::Bearer {
                    realm: "http://127.0.0.1:1/token".into(),
                    service: Some("svc".into()),
                    scope: None,
                }),
            ),
            (
                r#"Bearer realm="http://a/t\"x""#,
                Some(Challenge::Bearer {
                    realm: "http://a/t\"x".into(),
                    service: None,
                    scope: None,
                }),
            ),
            (r#"Bearer service="no realm""#, None),
            (r#"Negotiate abc"#, None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(&parse_challenge(header), want, "{header}");
        }
    }

    #[test]
    fn basic_header_is_base64_user_colon_password() {
        let creds = Credentials {
            username: "user".into(),
            password: "pa:ss".into(),
        };
        assert_eq!(basic_header(&creds), "Basic dXNlcjpwYTpzcw==");
    }

    #[test]
    fn scopes() {
        assert_eq!(
            repository_scope("a/b", Access::Push),
            "repository:a/b:pull,push"
        );
        assert_eq!(repository_scope("a", Access::Pull), "repository:a:pull");
    }

    #[test]
    fn token_cache_expires_and_forgets() {
        let cache = TokenCache::default();
        cache.insert("s", "t1".into(), Duration::from_secs(300));
        assert_eq!(cache.get("s").as_deref(), Some("t1"));
        assert_eq!(cache.get("other"), None);
        cache.remove("s");
        assert_eq!(cache.get("s"), None);
        // A lifetime shorter than the margin is already expired.
        cache.insert("short", "t2".into(), Duration::from_secs(3));
        assert_eq!(cache.get("short"), None);
    }

    #[test]
    fn token_responses() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"token":"abc","expires_in":300}"#).expect("json");
        assert_eq!(
            r.into_token(),
            Some(("abc".into(), Duration::from_secs(300)))
        );
        let r: TokenResponse = serde_json::from_str(r#"{"access_token":"x"}"#).expect("json");
        assert_eq!(r.into_token(), Some(("x".into(), Duration::from_secs(60))));
        let r: TokenResponse = serde_json::from_str(r#"{"token":""}"#).expect("json");
        assert_eq!(r.into_token(), None);
    }
}
