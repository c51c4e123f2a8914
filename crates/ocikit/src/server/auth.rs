//! Who is asking, and whether they may: authentication (Basic credentials
//! from an htpasswd file, Bearer tokens from the registry's own token
//! endpoint, client certificates) and authorisation by zot's access rules
//! ([`crate::access`]).
//!
//! # The answers a client sees
//!
//! - No credentials where a rule needs them: `401 UNAUTHORIZED` with a
//!   `WWW-Authenticate` challenge: `Basic realm="…"`, or with
//!   [`Scheme::Bearer`] `Bearer realm="<this registry>/auth/token",
//!   service="…",scope="repository:<name>:<actions>"`.
//! - Wrong credentials (or an expired or forged token): `401`, after the
//!   configured fail delay.
//! - An authenticated user the rules do not allow: `403 DENIED` (never a
//!   404: whether a repository exists is itself something to read).
//!
//! # Tokens
//!
//! `GET /auth/token?service=…&scope=repository:<name>:pull,push` with Basic
//! credentials (or none, for an anonymous token) answers the docker token
//! protocol's `{"token","access_token","expires_in","issued_at"}`. A token
//! is an HS256 JWT that names its user; what the user may do is decided per
//! request by the access rules, so a token never grants more than its user's
//! rules, and the `access` claim only tells the client what was granted.
//!
//! The signing key is made once and kept in a file ([`token_key`]; oci-serve
//! keeps it at `ROOT/_ocikit/token.key`, mode 0600), so tokens survive a
//! restart. Deleting the file revokes every token at the next start.
//!
//! # Cost on the hot path
//!
//! A server without users or rules does no work here at all. With them, a
//! request costs a header parse and either a bcrypt check remembered by
//! [`Htpasswd`] (one SHA-256 after the first) or one HMAC, and at most once
//! a second a `stat` of the htpasswd file (reloaded when it changed; a
//! token's user must still be in it): no file is read and no bcrypt runs per
//! request.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::RegistryError;
use crate::access::{AccessControl, Action, Identity};
use crate::htpasswd::Htpasswd;

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/auth/token";

/// How long an issued token is good for.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);

/// Which challenge a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `Basic realm="…"`: clients send the credentials with every request
    /// (what zot and distribution answer with an htpasswd file).
    #[default]
    Basic,
    /// `Bearer realm=…,service=…,scope=…`: clients trade the credentials
    /// for a token at [`TOKEN_PATH`] (docker's token protocol).
    Bearer,
}

/// How a registry authenticates and authorises, as the operator set it up.
#[derive(Debug, Default)]
pub struct AuthOptions {
    /// The realm of Basic challenges and the `service` of Bearer ones.
    pub realm: String,
    /// The user database; `None` for a registry without passwords.
    pub htpasswd: Option<Htpasswd>,
    /// The access rules; `None` lets every authenticated user do anything
    /// and anonymous requests nothing (zot's meaning of "auth, no rules").
    pub access: Option<AccessControl>,
    /// The challenge 401s carry.
    pub scheme: Scheme,
    /// How long to wait before answering a failed login (zot's `failDelay`).
    pub fail_delay: Duration,
}

/// Authentication and authorisation of one server. Built once at start.
#[derive(Debug)]
pub struct Auth {
    options: AuthOptions,
    key: [u8; TOKEN_KEY_LEN],
}

/// The identity of a verified client certificate, put into a request's
/// extensions by the TLS layer: its subject's common name is the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertUser(pub String);

/// Who a request comes from, once its credentials are checked.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user and its groups (anonymous: no user).
    pub identity: Identity,
}

impl Caller {
    fn anonymous(&self) -> bool {
        self.identity.user.is_none()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    access: Vec<Grant>,
}

#[derive(Serialize, Deserialize)]
struct Grant {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The docker scope actions an action needs.
fn scope_actions(action: Action) -> &'static str {
    match action {
        Action::Read => "pull",
        Action::Create | Action::Update => "pull,push",
        Action::Delete => "delete",
    }
}

/// The length of a token-signing key in bytes.
pub const TOKEN_KEY_LEN: usize = 32;

/// Why the token-signing key file could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    /// The file (or its directory) could not be read or written.
    #[error("token-signing key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key this registry wrote.
    #[error("token-signing key {path}: {reason}; delete the file and restart to make a new key (tokens issued before stop working)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn fresh_key() -> [u8; TOKEN_KEY_LEN] {
    use rand_core::RngCore;
    let mut key = [0u8; TOKEN_KEY_LEN];
    rand_core::OsRng.fill_bytes(&mut key);
    key
}

/// The token-signing key kept in `path` (64 hex digits and a newline),
/// made on first use: written to a temp file with mode 0600, fsynced and
/// linked into place only if no key is there yet, so a crash or a second
/// process never leaves a half-written or replaced key behind.
pub fn token_key(path: &Path) -> Result<[u8; TOKEN_KEY_LEN], TokenKeyError> {
    let io = |source| TokenKeyError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => return parse_token_key(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let key = fresh_key();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io)?;
            }
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            parse_token_key(path, &std::fs::read(path).map_err(io)?)
        }
        Err(e) => Err(io(e)),
    }
}

fn parse_token_key(path: &Path, bytes: &[u8]) -> Result<[u8; TOKEN_KEY_LEN], TokenKeyError> {
    let malformed = |reason: String| TokenKeyError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| malformed("not text (expected 64 hex digits)".into()))?
        .trim();
    if text.len() != 2 * TOKEN_KEY_LEN {
        return Err(malformed(format!(
            "{} characters where 64 hex digits belong",
            text.len()
        )));
    }
    let mut key = [0u8; TOKEN_KEY_LEN];
    hex::decode_to_slice(text, &mut key)
        .map_err(|e| malformed(format!("not 64 hex digits ({e})")))?;
    Ok(key)
}

impl Auth {
    /// Sets up authentication with a fresh token-signing key (tokens end
    /// with this value; see [`Auth::with_token_key`] to keep them).
    pub fn new(options: AuthOptions) -> Auth {
        Auth::with_token_key(options, fresh_key())
    }

    /// Sets up authentication signing tokens with `key` (from [`token_key`]).
    pub fn with_token_key(options: AuthOptions, key: [u8; TOKEN_KEY_LEN]) -> Auth {
        Auth { options, key }
    }

    /// The options this was built with.
    pub fn options(&self) -> &AuthOptions {
        &self.options
    }

    fn identify(&self, user: Option<&str>) -> Identity {
        match &self.options.access {
            Some(access) => access.identify(user),
            None => Identity {
                user: user.map(str::to_owned),
                groups: Vec::new(),
            },
        }
    }

    /// Whether the rules let `caller` do `action` on `repository`.
    pub fn permits(&self, caller: &Caller, action: Action, repository: &str) -> bool {
        match &self.options.access {
            Some(access) => access.allows(&caller.identity, action, repository),
            None => !caller.anonymous(),
        }
    }

    /// Whether anonymous requests are allowed to read anything at all.
    fn anonymous_reads_somewhere(&self) -> bool {
        self.options
            .access
            .as_ref()
            .is_some_and(|a| a.allows_anywhere(&Identity::default(), Action::Read))
    }

    /// Checks a request's credentials: `Err` is the 401 to answer.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        cert: Option<&ClientCertUser>,
        uri: &Uri,
        scope: Option<(&str, Action)>,
    ) -> Result<Caller, RegistryError> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            let user = cert.map(|c| c.0.as_str());
            return Ok(Caller {
                identity: self.identify(user),
            });
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let user = if scheme.eq_ignore_ascii_case("basic") {
            self.basic(rest.trim()).await
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer(rest.trim())
        } else {
            Err(format!(
                "{scheme} credentials are not accepted here; use Basic or a Bearer token from {TOKEN_PATH}"
            ))
        };
        match user {
            Ok(user) => Ok(Caller {
                identity: self.identify(user.as_deref().or(cert.map(|c| c.0.as_str()))),
            }),
            Err(reason) => {
                tracing::warn!("authentication failed: {reason}");
                if !self.options.fail_delay.is_zero() {
                    tokio::time::sleep(self.options.fail_delay).await;
                }
                Err(self.unauthorized(headers, uri, scope, &reason))
            }
        }
    }

    /// Basic credentials: `Ok(None)` for the empty user an anonymous
    /// containers/image client sends after a Basic challenge.
    async fn basic(&self, encoded: &str) -> Result<Option<String>, String> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| "the Basic credentials are not base64 of user:password".to_owned())?;
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if user.is_empty() && password.is_empty() {
            return Ok(None);
        }
        match &self.options.htpasswd {
            Some(users) if users.verify(user, password).await => Ok(Some(user.to_owned())),
            Some(_) => Err(format!("wrong user name or password for {user:?}")),
            None => Err("this registry has no password users; remove the credentials".into()),
        }
    }

    /// A token of ours: `Ok(None)` for an anonymous one.
    fn bearer(&self, token: &str) -> Result<Option<String>, String> {
        let invalid = || "the Bearer token is not one this registry issued".to_owned();
        let mut parts = token.splitn(3, '.');
        let (Some(head), Some(body), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| invalid())?;
        let mut mac = self.mac();
        mac.update(head.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let claims: Claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(invalid)?;
        if claims.exp <= now() {
            return Err("the Bearer token has expired; fetch a new one".into());
        }
        // A user removed from the htpasswd file loses its tokens too.
        if let Some(users) = &self.options.htpasswd {
            if !claims.sub.is_empty() && !users.has_user(&claims.sub) {
                return Err(format!(
                    "the Bearer token's user {:?} is no longer a user of this registry",
                    claims.sub
                ));
            }
        }
        Ok((!claims.sub.is_empty()).then_some(claims.sub))
    }

    /// A JWT of `claims`, signed with this registry's key.
    fn sign(&self, claims: &Claims) -> String {
        let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64(&serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(head.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("{head}.{body}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes never fails.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts a 32-byte key"))
    }

    /// A 401 with the challenge for `scope`.
    pub fn unauthorized(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        scope: Option<(&str, Action)>,
        reason: &str,
    ) -> RegistryError {
        let realm = &self.options.realm;
        let challenge = match self.options.scheme {
            Scheme::Basic => format!("Basic realm=\"{realm}\""),
            Scheme::Bearer => {
                let mut c = format!(
                    "Bearer realm=\"{}{TOKEN_PATH}\",service=\"{realm}\"",
                    origin(headers, uri)
                );
                if let Some((name, action)) = scope {
                    c.push_str(&format!(
                        ",scope=\"repository:{name}:{}\"",
                        scope_actions(action)
                    ));
                }
                c
            }
        };
        RegistryError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", reason)
            .with_header(header::WWW_AUTHENTICATE, &challenge)
    }

    /// `Ok` when `caller` may do `action` on `repository`; else the 401 (for
    /// anonymous callers) or 403 to answer.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        repository: &str,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(), RegistryError> {
        if self.permits(caller, action, repository) {
            return Ok(());
        }
        let verb = format!("{action:?}").to_lowercase();
        match &caller.identity.user {
            None => Err(self.unauthorized(
                headers,
                uri,
                Some((repository, action)),
                &format!("authentication required to {verb} {repository}; log in (e.g. --creds USER:PASSWORD)"),
            )),
            Some(user) => Err(RegistryError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!("user {user} may not {verb} {repository} (the access rules of this registry say so)"),
            )),
        }
    }

    /// `/v2/` and `/v2/_catalog` for an anonymous caller: a 401 when the
    /// registry has users and anonymous requests may read nothing, so that
    /// clients learn the challenge before they push.
    pub fn check_base(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        uri: &Uri,
        ping: bool,
    ) -> Result<(), RegistryError> {
        let has_users = self.options.htpasswd.is_some();
        let needs_login = if ping {
            has_users
        } else {
            has_users && !self.anonymous_reads_somewhere()
        };
        if caller.anonymous() && needs_login {
            return Err(self.unauthorized(
                headers,
                uri,
                None,
                "authentication required; log in (e.g. --creds USER:PASSWORD)",
            ));
        }
        Ok(())
    }

    /// `GET /auth/token`: a token for the caller and the scopes it may have.
    pub async fn token(&self, headers: &HeaderMap, uri: &Uri) -> Response {
        let caller = match self.authenticate(headers, None, uri, None).await {
            Ok(caller) => caller,
            Err(err) => {
                // The token endpoint always speaks Basic.
                let realm = &self.options.realm;
                let mut err = err;
                err.headers.retain(|(n, _)| n != header::WWW_AUTHENTICATE);
                return err
                    .with_header(
                        header::WWW_AUTHENTICATE,
                        &format!("Basic realm=\"{realm}\""),
                    )
                    .into_response();
            }
        };
        let mut access = Vec::new();
        let query = uri.query().unwrap_or_default();
        let mut service = self.options.realm.clone();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "service" => service = value.into_owned(),
                "scope" => {
                    for scope in value.split(' ') {
                        if let Some(grant) = self.grant(&caller, scope) {
                            access.push(grant);
                        }
                    }
                }
                _ => {}
            }
        }
        let issued = now();
        let claims = Claims {
            iss: "oci-serve".into(),
            sub: caller.identity.user.clone().unwrap_or_default(),
            aud: service,
            iat: issued,
            nbf: issued.saturating_sub(1),
            exp: issued + TOKEN_TTL.as_secs(),
            access,
        };
        let token = self.sign(&claims);
        let issued_at = crate::image::rfc3339(issued);
        let json = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL.as_secs(),
            "issued_at": issued_at,
        });
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.to_string(),
        )
            .into_response()
    }

    /// What of `scope` (`repository:<name>:<actions>`) the caller may have.
    fn grant(&self, caller: &Caller, scope: &str) -> Option<Grant> {
        let mut parts = scope.splitn(3, ':');
        let (kind, rest) = (parts.next()?, parts.next()?);
        // Names have no ':'; a `repository(plugin):name:actions` kind too.
        let actions = parts.next()?;
        if !kind.starts_with("repository") || crate::name::validate_repository(rest).is_err() {
            return None;
        }
        let granted: Vec<String> = actions
            .split(',')
            .filter(|a| {
                let needs: &[Action] = match *a {
                    "pull" => &[Action::Read],
                    "push" => &[Action::Create],
                    "delete" => &[Action::Delete],
                    "*" => &[Action::Read, Action::Create, Action::Update, Action::Delete],
                    _ => return false,
                };
                needs.iter().all(|&n| self.permits(caller, n, rest))
            })
            .map(str::to_owned)
            .collect();
        Some(Grant {
            kind: "repository".into(),
            name: rest.to_owned(),
            actions: granted,
        })
    }
}

/// `http(s)://host` of this registry as the client addressed it.
fn origin(headers: &HeaderMap, uri: &Uri) -> String {
    let scheme = if uri.scheme_str() == Some("https") || headers.contains_key(TLS_MARK) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A request header the server sets (after removing any the client sent)
/// on requests that arrived over TLS, so challenges name `https://`.
pub const TLS_MARK: &str = "x-ocikit-tls";

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Htpasswd {
        let hash = bcrypt::hash_with_result("pw", 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        Htpasswd::parse(&format!("alice:{hash}\nbob:{hash}\n")).expect("htpasswd")
    }

    fn auth(scheme: Scheme) -> Auth {
        let access: AccessControl = serde_json::from_str(
            r#"{"repositories": {
                "**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}], "anonymousPolicy": ["read"]},
                "private/**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}
            }}"#,
        )
        .expect("rules");
        Auth::new(AuthOptions {
            realm: "test-realm".into(),
            htpasswd: Some(users()),
            access: Some(access),
            scheme,
            fail_delay: Duration::ZERO,
        })
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {value}").parse().expect("header"),
        );
        h.insert(header::HOST, "reg.test:5000".parse().expect("host"));
        h
    }

    #[tokio::test]
    async fn basic_credentials() {
        let a = auth(Scheme::Basic);
        let uri: Uri = "/v2/".parse().expect("uri");
        let alice = a
            .authenticate(&basic("alice", "pw"), None, &uri, None)
            .await
            .expect("alice");
        assert_eq!(alice.identity.user.as_deref(), Some("alice"));
        let anon = a
            .authenticate(&basic("", ""), None, &uri, None)
            .await
            .expect("empty basic is anonymous");
        assert!(anon.anonymous());
        for (user, password, words) in [
            ("alice", "wrong", "wrong user name or password"),
            ("mallory", "pw", "wrong user name or password"),
        ] {
            let err = a
                .authenticate(&basic(user, password), None, &uri, None)
                .await
                .expect_err(user);
            assert_eq!(err.status, StatusCode::UNAUTHORIZED);
            assert!(err.message.contains(words), "{}", err.message);
            let challenge = &err.headers[0].1;
            assert_eq!(challenge, "Basic realm=\"test-realm\"");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Digest x".parse().expect("header"));
        let err = a
            .authenticate(&h, None, &uri, None)
            .await
            .expect_err("digest");
        assert!(
            err.message.contains("use Basic or a Bearer token"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn rules_decide_401_or_403() {
        let a = auth(Scheme::Bearer);
        let uri: Uri = "/v2/private/x/manifests/v1".parse().expect("uri");
        let h = basic("bob", "pw");
        let bob = a.authenticate(&h, None, &uri, None).await.expect("bob");
        let err = a
            .authorize(&bob, Action::Create, "app", &h, &uri)
            .expect_err("bob may not push");
        assert_eq!((err.status, err.code), (StatusCode::FORBIDDEN, "DENIED"));
        assert!(
            err.message.contains("user bob may not create app"),
            "{}",
            err.message
        );
        let anon = Caller {
            identity: Identity::default(),
        };
        assert!(a.authorize(&anon, Action::Read, "app", &h, &uri).is_ok());
        let err = a
            .authorize(&anon, Action::Read, "private/x", &h, &uri)
            .expect_err("anonymous private");
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            err.headers[0].1,
            "Bearer realm=\"http://reg.test:5000/auth/token\",service=\"test-realm\",scope=\"repository:private/x:pull\""
        );
        assert!(
            a.check_base(&anon, &h, &uri, true).is_err(),
            "ping challenges"
        );
        assert!(
            a.check_base(&anon, &h, &uri, false).is_ok(),
            "catalog is filtered"
        );
    }

    #[tokio::test]
    async fn tokens_round_trip_and_forgeries_fail() {
        let a = auth(Scheme::Bearer);
        let uri: Uri = "/auth/token?service=test-realm&scope=repository:app:pull,push&scope=repository:private/x:pull,push"
            .parse()
            .expect("uri");
        let response = a.token(&basic("alice", "pw"), &uri).await;
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let token = json["token"].as_str().expect("token").to_owned();
        assert_eq!(json["access_token"], json["token"]);
        assert_eq!(json["expires_in"], 300);
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).expect("claims"))
                .expect("b64"),
        )
        .expect("claims json");
        assert_eq!(
            claims["access"][0]["actions"],
            serde_json::json!(["pull", "push"])
        );
        assert_eq!(claims["access"][1]["actions"], serde_json::json!(["pull"]));
        assert_eq!(a.bearer(&token), Ok(Some("alice".into())));
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(a.bearer(&forged).is_err());
        assert!(auth(Scheme::Bearer).bearer(&token).is_err(), "another key");
        let wrong = a.token(&basic("alice", "nope"), &uri).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            wrong.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"test-realm\""
        );
    }

    #[test]
    fn token_keys_are_kept_private_and_checked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token.key");
        let key = token_key(&path).expect("made");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(token_key(&path).expect("read again"), key);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["token.key"], "no temp file left");
        // Tokens of one Auth verify in another with the same key.
        let options = || AuthOptions {
            realm: "r".into(),
            htpasswd: Some(users()),
            ..AuthOptions::default()
        };
        let (a, b) = (
            Auth::with_token_key(options(), key),
            Auth::with_token_key(options(), key),
        );
        let token = a.sign(&Claims {
            iss: "oci-serve".into(),
            sub: "alice".into(),
            aud: "r".into(),
            iat: now(),
            nbf: now(),
            exp: now() + 60,
            access: Vec::new(),
        });
        assert_eq!(b.bearer(&token), Ok(Some("alice".into())));
        for (text, words) in [
            ("", "0 characters where 64 hex digits belong"),
            (&"zz".repeat(32)[..], "not 64 hex digits"),
            (&"ab".repeat(31)[..], "62 characters"),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = token_key(&path).expect_err(text).to_string();
            assert!(
                err.contains(words)
                    && err.contains("token.key")
                    && err.contains("delete the file and restart"),
                "{err}"
            );
        }
        let missing = dir.path().join("no/such/dir/token.key");
        let err = token_key(&missing).expect_err("no dir").to_string();
        assert!(err.contains("no/such/dir/token.key"), "{err}");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(crate::image::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(crate::image::rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(crate::image::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
