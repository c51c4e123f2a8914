//! The registry client: one HTTP connection pool, endpoint and token cache
//! per registry host, shared by every [`Repository`] handle made from the
//! same [`Client`].
//!
//! Every request goes through [`Repository::send`]: the endpoint is found on
//! first use (`GET /v2/`, which also tells how the registry authenticates),
//! the request is sent with the right `Authorization`, a 401 is answered once
//! with fresh credentials or a fresh token, and 429/5xx/I/O failures are
//! retried with backoff.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::sync::OnceCell;
use url::Url;

use super::auth::{self, Access, Challenge, TokenCache};
use super::credentials::{self, CredentialSource, Credentials, Environment, Found};
use super::error::{error_detail, AuthFailure};
use super::retry::{self, RetryPolicy};
use super::tls;
use super::RegistryError;

/// How a [`Client`] connects and authenticates; one per side of a copy.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `None`: verify TLS, except loopback registries, which are insecure
    /// (HTTPS with any certificate, then plain HTTP). `Some(false)`: every
    /// registry insecure. `Some(true)`: verify even loopback.
    pub tls_verify: Option<bool>,
    /// `--cert-dir`: CA `*.crt` and client `*.cert` + `*.key`; replaces the
    /// certs.d lookup.
    pub cert_dir: Option<PathBuf>,
    /// `--creds`: beats every auth file.
    pub creds: Option<Credentials>,
    /// The flag that sets `creds`, named in 401/403 messages (`--creds`,
    /// `--src-creds`, `--dest-creds`).
    pub creds_flag: &'static str,
    /// `--authfile`: replaces `REGISTRY_AUTH_FILE` and the containers auth files.
    pub authfile: Option<PathBuf>,
    /// `--retry-times`: retries after a 429, 5xx or I/O failure.
    pub retry_times: u32,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The certs.d roots searched for `HOST:PORT/` (default: the user's
    /// `~/.config/containers/certs.d`, `/etc/containers/certs.d`,
    /// `/etc/docker/certs.d`); tests point it at a temp dir.
    pub certs_d: Vec<PathBuf>,
    /// The environment auth files and credential helpers are found in.
    pub environment: Environment,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        let environment = Environment::from_process();
        ClientOptions {
            tls_verify: None,
            cert_dir: None,
            creds: None,
            creds_flag: "--creds",
            authfile: None,
            retry_times: 3,
            user_agent: concat!("ocikit/", env!("CARGO_PKG_VERSION")).to_owned(),
            certs_d: tls::default_certs_d(environment.home.as_deref()),
            environment,
        }
    }
}

/// A registry client: cheap to clone, one connection pool and token cache
/// per registry host for the whole process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    opts: ClientOptions,
    retry: RetryPolicy,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

/// Everything known about one registry host.
pub(crate) struct Host {
    /// The registry as the user wrote it (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    /// Where to connect (`registry-1.docker.io` for `docker.io`).
    endpoint: String,
    insecure: bool,
    http: OnceCell<reqwest::Client>,
    /// `scheme://endpoint/`, found by the first `GET /v2/`.
    base: OnceCell<Url>,
    /// `None` until a 401 said how to authenticate.
    challenge: Mutex<Option<Challenge>>,
    tokens: TokenCache,
    creds: Mutex<HashMap<String, Found>>,
}

impl Client {
    /// A client with these options. Nothing is contacted until the first
    /// request.
    pub fn new(opts: ClientOptions) -> Result<Client, RegistryError> {
        let retry = RetryPolicy::new(opts.retry_times);
        Ok(Client {
            inner: Arc::new(ClientInner {
                opts,
                retry,
                hosts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// A handle on `repository` at `registry` (as the user wrote it:
    /// `docker.io`, `127.0.0.1:5000`; Docker Hub is served by
    /// `registry-1.docker.io`).
    pub fn repository(&self, registry: &str, repository: &str) -> Repository {
        let host = {
            let mut hosts = self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
            hosts
                .entry(registry.to_owned())
                .or_insert_with(|| {
                    Arc::new(Host {
                        registry: registry.to_owned(),
                        endpoint: endpoint_for(registry),
                        insecure: tls::is_insecure(registry, self.inner.opts.tls_verify),
                        http: OnceCell::new(),
                        base: OnceCell::new(),
                        challenge: Mutex::new(None),
                        tokens: TokenCache::default(),
                        creds: Mutex::new(HashMap::new()),
                    })
                })
                .clone()
        };
        Repository {
            client: self.clone(),
            host,
            name: repository.to_owned(),
        }
    }
}

/// The host to connect to for a registry name.
fn endpoint_for(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// A repository on a registry: where manifests, blobs, tags and referrers
/// live. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    client: Client,
    host: Arc<Host>,
    name: String,
}

/// An error and its causes on one line (`a: b: c`).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Repository {
    /// The registry as the user wrote it.
    pub fn registry(&self) -> &str {
        &self.host.registry
    }

    /// The repository name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `registry/name`, for messages.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.host.registry, self.name)
    }

    /// Checks that the registry answers the distribution API (`GET /v2/`),
    /// finding its scheme and how it authenticates.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        self.base().await.map(|_| ())
    }

    /// The retry policy of the client.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.client.inner.retry
    }

    fn opts(&self) -> &ClientOptions {
        &self.client.inner.opts
    }

    async fn http(&self) -> Result<&reqwest::Client, RegistryError> {
        self.host
            .http
            .get_or_try_init(|| async {
                let opts = self.opts();
                let dirs =
                    tls::cert_dirs(&self.host.registry, opts.cert_dir.as_deref(), &opts.certs_d);
                tls::build_http(
                    &self.host.registry,
                    &opts.user_agent,
                    self.host.insecure,
                    &dirs,
                )
            })
            .await
    }

    /// `scheme://endpoint/`, found on first use.
    pub(crate) async fn base(&self) -> Result<&Url, RegistryError> {
        self.host
            .base
            .get_or_try_init(|| self.find_endpoint())
            .await
    }

    async fn find_endpoint(&self) -> Result<Url, RegistryError> {
        let http = self.http().await?.clone();
        let schemes: &[&str] = if self.host.insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = None;
        for scheme in schemes {
            let base = Url::parse(&format!("{scheme}://{}/", self.host.endpoint)).map_err(|e| {
                RegistryError::InvalidInput {
                    what: "registry",
                    value: self.host.registry.clone(),
                    reason: e.to_string(),
                }
            })?;
            let url = base.join("v2/").map_err(|e| RegistryError::InvalidInput {
                what: "registry",
                value: self.host.registry.clone(),
                reason: e.to_string(),
            })?;
            let mut attempt = 0;
            loop {
                match http.get(url.clone()).send().await {
                    Ok(resp) => {
                        if resp.status() == StatusCode::UNAUTHORIZED {
                            self.learn_challenge(resp.headers().get(WWW_AUTHENTICATE));
                        } else if retry::retryable_status(resp.status().as_u16())
                            && attempt < self.client.inner.retry.times
                        {
                            tokio::time::sleep(self.client.inner.retry.delay(attempt, None)).await;
                            attempt += 1;
                            continue;
                        }
                        return Ok(base);
                    }
                    Err(e) => {
                        // Only a registry that might be there gets retried:
                        // a plain-HTTP server answering a TLS hello fails
                        // the same way every time, so fall back at once.
                        let retry_it = !self.host.insecure
                            && !e.is_connect()
                            && attempt < self.client.inner.retry.times;
                        if retry_it {
                            tokio::time::sleep(self.client.inner.retry.delay(attempt, None)).await;
                            attempt += 1;
                            continue;
                        }
                        last = Some((url.clone(), e));
                        break;
                    }
                }
            }
            if let (true, Some((url, e))) = (*scheme == "https", &last) {
                // A registry that wants a client certificate fails the same
                // way over plain HTTP: say so instead of falling back. One
                // that answered in plain HTTP speaks no TLS to ask with.
                if tls::peer_speaks_plain_http(&error_chain(e)) {
                    continue;
                }
                if let Some(hint) = self.client_certificate_hint().await {
                    return Err(RegistryError::Connect {
                        url: url.to_string(),
                        reason: error_chain(e),
                        hint,
                    });
                }
            }
        }
        let (url, e) = match last {
            Some(last) => last,
            None => {
                return Err(RegistryError::InvalidInput {
                    what: "registry",
                    value: self.host.registry.clone(),
                    reason: "no scheme to try".into(),
                })
            }
        };
        let reason = error_chain(&e);
        let hint = if self.host.insecure {
            String::new()
        } else if reason.contains("certificate") || reason.contains("Certificate") {
            format!(
                "; if {} uses a private CA, put it in /etc/containers/certs.d/{}/ca.crt or pass \
                 its directory with {} (--tls-verify=false skips the check)",
                self.host.registry,
                self.host.registry,
                self.cert_dir_flag()
            )
        } else if reason.contains("InvalidContentType") || reason.contains("corrupt message") {
            "; the registry may speak plain HTTP: use --tls-verify=false for it".to_owned()
        } else {
            String::new()
        };
        Err(RegistryError::Connect {
            url: url.to_string(),
            reason,
            hint,
        })
    }

    /// The flag that sets this side's certificate directory (`--cert-dir`,
    /// `--src-cert-dir`, `--dest-cert-dir`), named like its creds flag.
    fn cert_dir_flag(&self) -> String {
        self.opts().creds_flag.replace("creds", "cert-dir")
    }

    /// After a failed HTTPS connection: if the registry asks for a client
    /// certificate (mutual TLS), what to do about it.
    async fn client_certificate_hint(&self) -> Option<String> {
        let endpoint = self.host.endpoint.clone();
        let asks =
            tokio::task::spawn_blocking(move || tls::server_wants_client_certificate(&endpoint))
                .await
                .unwrap_or(false);
        if !asks {
            return None;
        }
        let opts = self.opts();
        let registry = &self.host.registry;
        let client = tls::cert_dirs(registry, opts.cert_dir.as_deref(), &opts.certs_d)
            .iter()
            .filter_map(|dir| tls::scan_cert_dir(dir).ok())
            .find_map(|files| files.clients.into_iter().next());
        Some(match client {
            None => format!(
                "; {registry} requires a client certificate (mutual TLS) and none was given: put \
                 NAME.cert and NAME.key (and its CA as ca.crt) in \
                 ~/.config/containers/certs.d/{registry}/ or /etc/containers/certs.d/{registry}/, \
                 or pass their directory with {}",
                self.cert_dir_flag()
            ),
            Some((cert, _)) => format!(
                "; {registry} requires a client certificate and refused {}: check that a CA \
                 the registry trusts (its http.tls.clientcas) signed it and that it has not expired",
                cert.display()
            ),
        })
    }

    fn learn_challenge(&self, header: Option<&HeaderValue>) {
        let parsed = header
            .and_then(|h| h.to_str().ok())
            .and_then(auth::parse_challenge);
        if let Some(challenge) = parsed {
            let mut slot = self
                .host
                .challenge
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *slot = Some(challenge);
        }
    }

    /// `base/v2/NAME/<path>`.
    pub(crate) async fn url(&self, path: &str) -> Result<Url, RegistryError> {
        let base = self.base().await?;
        base.join(&format!("v2/{}/{path}", self.name))
            .map_err(|e| RegistryError::InvalidInput {
                what: "repository",
                value: self.name.clone(),
                reason: e.to_string(),
            })
    }

    /// The credential for this repository and where it came from.
    pub(crate) async fn credentials(&self) -> Result<Found, RegistryError> {
        let opts = self.opts();
        if let Some(creds) = &opts.creds {
            return Ok(Found {
                credentials: Some(creds.clone()),
                source: CredentialSource::Flag(opts.creds_flag),
                searched: Vec::new(),
            });
        }
        if let Some(found) = self
            .host
            .creds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.name)
        {
            return Ok(found.clone());
        }
        let env = opts.environment.clone();
        let authfile = opts.authfile.clone();
        let registry = self.host.registry.clone();
        let name = self.name.clone();
        let found = tokio::task::spawn_blocking(move || {
            credentials::lookup(&env, authfile.as_deref(), &registry, &name)
        })
        .await
        .map_err(|e| RegistryError::Credentials {
            source_name: "credential lookup".into(),
            reason: e.to_string(),
        })??;
        self.host
            .creds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.name.clone(), found.clone());
        Ok(found)
    }

    /// The scopes a request needs.
    pub(crate) fn scopes(&self, access: Access, extra: &[String]) -> Vec<String> {
        let mut scopes = vec![auth::repository_scope(&self.name, access)];
        scopes.extend(extra.iter().cloned());
        scopes
    }

    /// The `Authorization` value for a request needing `scopes`, per the
    /// challenge known so far (none before the first 401).
    async fn authorization(
        &self,
        access: Access,
        scopes: &[String],
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self
            .host
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => {
                let found = self.credentials().await?;
                Ok(found.credentials.as_ref().map(auth::basic_header))
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.join(" ");
                if access == Access::Pull && scopes.len() == 1 {
                    // A push token covers pulls too: don't fetch another.
                    let push_key = auth::repository_scope(&self.name, Access::Push);
                    if let Some(token) = self.host.tokens.get(&push_key) {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                }
                if let Some(token) = self.host.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let token = self
                    .fetch_token(&realm, service.as_deref(), scopes, access)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Trades the credential (or nothing) for a token at the realm.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        access: Access,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| RegistryError::InvalidResponse {
            url: realm.to_owned(),
            reason: format!("the token realm is not a URL: {e}"),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let found = self.credentials().await?;
        let http = self.http().await?;
        let mut attempt = 0;
        let resp = loop {
            let mut req = http.get(url.clone());
            if let Some(creds) = &found.credentials {
                req = req.header(AUTHORIZATION, auth::basic_header(creds));
            }
            match req.send().await {
                Ok(resp)
                    if retry::retryable_status(resp.status().as_u16())
                        && attempt < self.client.inner.retry.times =>
                {
                    tokio::time::sleep(self.client.inner.retry.delay(attempt, None)).await;
                }
                Ok(resp) => break resp,
                Err(e) if attempt < self.client.inner.retry.times => {
                    tracing::debug!("token request to {url} failed, retrying: {e}");
                    tokio::time::sleep(self.client.inner.retry.delay(attempt, None)).await;
                }
                Err(e) => {
                    return Err(RegistryError::Connect {
                        url: url.to_string(),
                        reason: error_chain(&e),
                        hint: String::new(),
                    })
                }
            }
            attempt += 1;
        };
        let status = resp.status();
        let body = read_limited(resp, 1 << 20).await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(&found, access, status, error_detail(&body)));
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: status.as_u16(),
                detail: error_detail(&body),
            });
        }
        let parsed: auth::TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse {
                url: url.to_string(),
                reason: format!("the token answer is not JSON: {e}"),
            })?;
        let (token, lifetime) =
            parsed
                .into_token()
                .ok_or_else(|| RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: "the token answer holds no token".into(),
                })?;
        self.host
            .tokens
            .insert(&scopes.join(" "), token.clone(), lifetime);
        Ok(token)
    }

    fn unauthorized(
        &self,
        found: &Found,
        access: Access,
        status: StatusCode,
        detail: String,
    ) -> RegistryError {
        let failure = Box::new(AuthFailure {
            status: status.as_u16(),
            registry: self.host.registry.clone(),
            repository: self.name.clone(),
            source_tried: found.source.to_string(),
            searched: found.searched.clone(),
            action: access.verb(),
            flag: self.opts().creds_flag,
            detail: detail.trim_start_matches(": ").to_owned(),
        });
        if status == StatusCode::FORBIDDEN {
            RegistryError::Forbidden(failure)
        } else {
            RegistryError::Unauthorized(failure)
        }
    }

    /// Sends a request built by `build` (called again for each attempt),
    /// with authentication and retries. The answer may have any status;
    /// [`Repository::fail`] turns an unexpected one into an error.
    pub(crate) async fn send<F>(
        &self,
        access: Access,
        extra_scopes: &[String],
        build: F,
    ) -> Result<reqwest::Response, RegistryError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        self.base().await?;
        let http = self.http().await?;
        let scopes = self.scopes(access, extra_scopes);
        let policy = self.client.inner.retry;
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            let authorization = self.authorization(access, &scopes).await?;
            let mut req = build(http);
            if let Some(value) = &authorization {
                req = req.header(AUTHORIZATION, value);
            }
            let describe = req
                .try_clone()
                .and_then(|r| r.build().ok())
                .map(|r| (r.method().to_string(), r.url().to_string()));
            match req.send().await {
                Err(e) => {
                    let (method, url) = describe.unwrap_or_default();
                    if attempt < policy.times && !e.is_builder() {
                        tracing::debug!("{method} {url} failed, retrying: {e}");
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(RegistryError::Connect {
                        url,
                        reason: error_chain(&e),
                        hint: String::new(),
                    });
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                        reauthenticated = true;
                        self.learn_challenge(resp.headers().get(WWW_AUTHENTICATE));
                        self.host.tokens.remove(&scopes.join(" "));
                        let fresh = self.authorization(access, &scopes).await?;
                        if fresh.is_some() && fresh != authorization {
                            continue;
                        }
                        return Ok(resp);
                    }
                    if retry::retryable_status(status.as_u16()) && attempt < policy.times {
                        let after = resp
                            .headers()
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(retry::parse_retry_after);
                        tokio::time::sleep(policy.delay(attempt, after)).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// Sends a request whose body can only be sent once (a streamed upload):
    /// authenticated, but neither retried nor re-authenticated.
    pub(crate) async fn send_once(
        &self,
        access: Access,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let scopes = self.scopes(access, &[]);
        let authorization = self.authorization(access, &scopes).await?;
        let req = match authorization {
            Some(value) => req.header(AUTHORIZATION, value),
            None => req,
        };
        req.send().await.map_err(|e| RegistryError::Connect {
            url: e.url().map(Url::to_string).unwrap_or_default(),
            reason: error_chain(&e),
            hint: String::new(),
        })
    }

    /// The HTTP client, for building requests for [`Repository::send_once`].
    pub(crate) async fn http_client(&self) -> Result<&reqwest::Client, RegistryError> {
        self.base().await?;
        self.http().await
    }

    /// Turns an unexpected answer into the matching error: 401/403 name the
    /// credential source and flag, 404 is [`RegistryError::NotFound`].
    pub(crate) async fn fail(
        &self,
        resp: reqwest::Response,
        method: &Method,
        access: Access,
        what: &str,
    ) -> RegistryError {
        let status = resp.status();
        let url = resp.url().to_string();
        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
        let detail = error_detail(&body);
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => match self.credentials().await {
                Ok(found) => self.unauthorized(&found, access, status, detail),
                Err(e) => e,
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                url,
                what: what.to_owned(),
                status: status.as_u16(),
                detail,
            },
            _ => RegistryError::Status {
                method: method.to_string(),
                url,
                status: status.as_u16(),
                detail,
            },
        }
    }
}

/// Reads a response body, keeping at most `limit` bytes (callers that must
/// refuse longer bodies ask for one byte more than they accept).
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_endpoint() {
        assert_eq!(endpoint_for("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_for("index.docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_for("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn repositories_share_a_host() {
        let client = Client::new(ClientOptions::default()).expect("client");
        let a = client.repository("docker.io", "library/alpine");
        let b = client.repository("docker.io", "library/busybox");
        assert!(Arc::ptr_eq(&a.host, &b.host));
        assert_eq!(a.registry(), "docker.io");
        assert_eq!(b.name(), "library/busybox");
        assert!(!a.host.insecure);
        assert!(client.repository("localhost:5000", "x").host.insecure);
    }
}
