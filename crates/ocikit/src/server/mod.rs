//! The registry server: every endpoint of the OCI Distribution Spec v1.1 over
//! any [`Storage`], on axum and tokio.
//!
//! Repository names contain slashes, so routing is done here rather than by
//! the router's path patterns: [`Route::parse`] reads the fixed suffixes
//! (`/manifests/<ref>`, `/blobs/<digest>`, `/blobs/uploads/<id>`,
//! `/tags/list`, `/referrers/<digest>`) from the end of the path and checks
//! the rest against the spec's name grammar. Handlers live in one module per
//! area: [`blobs`] (blobs and uploads), [`manifests`], [`discovery`] (tags,
//! catalog, referrers).
//!
//! Slow or stalled clients are bounded: request headers must arrive within
//! [`ServerConfig::header_timeout`], a connection without progress in either
//! direction for [`ServerConfig::idle_timeout`] is closed (this covers
//! trickling uploads and clients that stop reading), manifest bodies are
//! capped at 4 MiB, and at most [`ServerConfig::max_connections`] are open.
//! One client may hold at most [`ServerConfig::max_uploads_per_client`]
//! upload sessions at once (see [`sessions`]); more are refused with 429.

pub mod auth;
mod blobs;
mod discovery;
mod error;
mod io;
mod manifests;
pub mod metrics;
mod sessions;
pub mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

pub use error::RegistryError;

use crate::access::Action;
use crate::name::validate_repository;
use crate::storage::{ByteStream, Storage};
use auth::Caller;

/// Limits that keep slow or hostile clients from exhausting the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a connection may make no progress (no bytes read or written).
    pub idle_timeout: Duration,
    /// How many connections may be open at once; more are refused.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Users and access rules; `None` serves everyone everything.
    pub auth: Option<Arc<auth::Auth>>,
    /// TLS (see [`tls::server_config`]); `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The counters `/metrics` shows; the embedding program may add its own.
    pub metrics: Arc<metrics::Metrics>,
    /// How many upload sessions one client (its user, else its IP address)
    /// may have open at once; 0 for no limit. A session untouched for
    /// [`ServerConfig::idle_timeout`] stops counting.
    pub max_uploads_per_client: usize,
}

/// The default of [`ServerConfig::max_uploads_per_client`]: far above what
/// a push needs (skopeo, containerd and oci-copy open a few at a time).
pub const DEFAULT_MAX_UPLOADS_PER_CLIENT: usize = 128;

/// The peer address of a request's connection, put into its extensions by
/// [`serve`]: the client an anonymous request's upload sessions count for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
            auth: None,
            tls: None,
            metrics: Arc::default(),
            max_uploads_per_client: DEFAULT_MAX_UPLOADS_PER_CLIENT,
        }
    }
}

/// What every handler shares.
pub(crate) struct App<S> {
    pub(crate) storage: S,
    pub(crate) idle: Duration,
    pub(crate) auth: Option<Arc<auth::Auth>>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// Set when a graceful shutdown starts: `/readyz` says 503 and new
    /// uploads are refused while the ones in flight finish.
    pub(crate) draining: Arc<AtomicBool>,
    /// Open upload sessions per client; `None` when unlimited.
    pub(crate) sessions: Option<sessions::UploadSessions>,
}

type Shared<S> = Arc<App<S>>;
type HandlerResult = Result<Response, RegistryError>;

/// The axum router of the whole API over `storage`.
pub fn router<S: Storage>(storage: S, config: &ServerConfig) -> axum::Router {
    router_draining(storage, config, Arc::default())
}

fn router_draining<S: Storage>(
    storage: S,
    config: &ServerConfig,
    draining: Arc<AtomicBool>,
) -> axum::Router {
    let app = Arc::new(App {
        storage,
        idle: config.idle_timeout,
        auth: config.auth.clone(),
        metrics: config.metrics.clone(),
        draining,
        sessions: (config.max_uploads_per_client > 0).then(|| {
            sessions::UploadSessions::new(config.max_uploads_per_client, config.idle_timeout)
        }),
    });
    axum::Router::new().fallback(dispatch::<S>).with_state(app)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (up to [`ServerConfig::shutdown_grace`]).
pub async fn serve<S: Storage>(
    listener: TcpListener,
    storage: S,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let draining = Arc::new(AtomicBool::new(false));
    let app = router_draining(storage, &config, draining.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => (stream, PeerAddr(peer)),
            Err(err) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!("accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("refusing a connection: {} open", config.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = io::IdleTimeout::new(stream, config.idle_timeout);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let app = app.clone();
        match &tls {
            None => {
                let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                    app,
                    move |mut request: axum::http::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(peer);
                        request
                    },
                ));
                let connection = watcher.watch(
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = config.header_timeout;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::debug!("TLS handshake: {err}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let user = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|cert| tls::subject_common_name(cert))
                        .map(auth::ClientCertUser);
                    let service = tower::ServiceExt::map_request(
                        app,
                        move |mut request: axum::http::Request<hyper::body::Incoming>| {
                            request
                                .headers_mut()
                                .insert(auth::TLS_MARK, HeaderValue::from_static("1"));
                            request.extensions_mut().insert(peer);
                            if let Some(user) = &user {
                                request.extensions_mut().insert(user.clone());
                            }
                            request
                        },
                    );
                    let connection = watcher.watch(
                        builder
                            .serve_connection(
                                TokioIo::new(stream),
                                TowerToHyperService::new(service),
                            )
                            .into_owned(),
                    );
                    let _ = connection.await;
                    drop(slot);
                });
            }
        }
    }
    draining.store(true, Ordering::SeqCst);
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.shutdown_grace) => {}
    }
    Ok(())
}

/// Where a request goes, read from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(String),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(String, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(String, String),
    /// `/v2/<name>/blobs/uploads/`
    Uploads(String),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(String, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(String, String),
}

impl Route {
    /// Reads a request path; `None` for paths outside the API. The name is
    /// not validated here (see [`Route::name`]).
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(Route::Base);
        }
        let rest = rest.strip_prefix('/')?;
        if rest == "_catalog" {
            return Some(Route::Catalog);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name = |k: usize| (k > 0).then(|| segments[..k].join("/"));
        let last = segments[n - 1].to_owned();
        if n >= 3 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let name = name(n - 3)?;
            return Some(if last.is_empty() {
                Route::Uploads(name)
            } else {
                Route::Upload(name, last)
            });
        }
        if n >= 3 && segments[n - 2] == "blobs" && last == "uploads" {
            return Some(Route::Uploads(name(n - 2)?));
        }
        if n < 2 {
            return None;
        }
        let name = name(n - 2)?;
        match segments[n - 2] {
            "tags" if last == "list" => Some(Route::Tags(name)),
            "manifests" => Some(Route::Manifest(name, last)),
            "blobs" => Some(Route::Blob(name, last)),
            "referrers" => Some(Route::Referrers(name, last)),
            _ => None,
        }
    }

    /// The repository the route is about, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(name)
            | Route::Manifest(name, _)
            | Route::Blob(name, _)
            | Route::Uploads(name)
            | Route::Upload(name, _)
            | Route::Referrers(name, _) => Some(name),
        }
    }
}

/// The label of a route in metrics.
fn route_label(route: &Route) -> &'static str {
    match route {
        Route::Base => "base",
        Route::Catalog => "catalog",
        Route::Tags(_) => "tags",
        Route::Manifest(..) => "manifest",
        Route::Blob(..) => "blob",
        Route::Uploads(_) => "blob_upload_start",
        Route::Upload(..) => "blob_upload",
        Route::Referrers(..) => "referrers",
    }
}

fn content_length(headers: &HeaderMap) -> u64 {
    header_str(headers, header::CONTENT_LENGTH)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `/healthz`, `/readyz` and `/metrics`, outside the distribution API.
fn operations<S: Storage>(app: &Shared<S>, path: &str) -> Option<Response> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    match path {
        "/healthz" => Some(text(StatusCode::OK, "ok\n".into(), "text/plain")),
        "/readyz" if app.draining.load(Ordering::Relaxed) => Some(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".into(),
            "text/plain",
        )),
        "/readyz" => Some(text(StatusCode::OK, "ready\n".into(), "text/plain")),
        "/metrics" => Some(text(
            StatusCode::OK,
            app.metrics.render(),
            "text/plain; version=0.0.4",
        )),
        _ => None,
    }
}

async fn dispatch<S: Storage>(State(app): State<Shared<S>>, request: Request) -> Response {
    if let Some(response) = operations(&app, request.uri().path()) {
        return response;
    }
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let bytes_in = content_length(request.headers());
    let mut label = "other";
    let mut response = match handle(&app, request, &mut label).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    let bytes_out = if method == Method::HEAD {
        0
    } else {
        content_length(response.headers())
    };
    app.metrics.record(
        label,
        &method,
        response.status().as_u16(),
        started.elapsed(),
        bytes_in,
        bytes_out,
    );
    response
}

/// What a route needs the caller to be allowed: an action on a repository.
fn required_action(route: &Route, method: &Method) -> Option<(Action, String)> {
    let action = match (route, method) {
        (Route::Base | Route::Catalog, _) => return None,
        (Route::Manifest(..) | Route::Blob(..), &Method::DELETE) => Action::Delete,
        (
            Route::Tags(_) | Route::Referrers(..) | Route::Manifest(..) | Route::Blob(..),
            &Method::GET | &Method::HEAD,
        ) => Action::Read,
        // A manifest PUT is a create or an update; handled with the tag known.
        (Route::Manifest(..), _) => Action::Create,
        (Route::Uploads(_) | Route::Upload(..), _) => Action::Create,
        // Anything else is answered 405 below; reading is the least to ask.
        _ => Action::Read,
    };
    route.name().map(|name| (action, name.to_owned()))
}

async fn handle<S: Storage>(
    app: &Shared<S>,
    request: Request,
    label: &mut &'static str,
) -> HandlerResult {
    if request.uri().path() == auth::TOKEN_PATH {
        if let Some(gate) = &app.auth {
            *label = "token";
            return Ok(gate.token(request.headers(), request.uri()).await);
        }
    }
    let Some(route) = Route::parse(request.uri().path()) else {
        return Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            format!(
                "{} is not an endpoint of the OCI distribution API",
                request.uri().path()
            ),
        ));
    };
    *label = route_label(&route);
    if app.draining.load(Ordering::Relaxed) && matches!(route, Route::Uploads(_)) {
        return Err(RegistryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the registry is shutting down and takes no new uploads; retry against another replica or after the restart",
        ));
    }
    if let Some(name) = route.name() {
        validate_repository(name).map_err(|e| {
            RegistryError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", e.to_string())
        })?;
    }
    let method = request.method().clone();
    let caller = match &app.auth {
        None => None,
        Some(gate) => {
            let needed = required_action(&route, &method);
            let cert = request.extensions().get::<auth::ClientCertUser>();
            let scope = needed.as_ref().map(|(a, n)| (n.as_str(), *a));
            let caller = gate
                .authenticate(request.headers(), cert, request.uri(), scope)
                .await?;
            match &needed {
                // A manifest PUT needs create or update, which one is known
                // once the body's digest is (see `manifests::put`).
                Some((Action::Create, name))
                    if method == Method::PUT && matches!(route, Route::Manifest(..)) =>
                {
                    if !gate.permits(&caller, Action::Update, name) {
                        gate.authorize(
                            &caller,
                            Action::Create,
                            name,
                            request.headers(),
                            request.uri(),
                        )?;
                    }
                }
                Some((action, name)) => {
                    gate.authorize(&caller, *action, name, request.headers(), request.uri())?;
                }
                None => gate.check_base(
                    &caller,
                    request.headers(),
                    request.uri(),
                    route == Route::Base,
                )?,
            }
            Some((gate.clone(), caller))
        }
    };
    // Whose upload sessions a new one counts against: the user, else the IP.
    // Only a POST that may open a session pays for naming the client.
    let opens_session =
        app.sessions.is_some() && method == Method::POST && matches!(route, Route::Uploads(_));
    let client = match (&caller, request.extensions().get::<PeerAddr>()) {
        _ if !opens_session => String::new(),
        (Some((_, Caller { identity })), _) if identity.user.is_some() => {
            format!("user {}", identity.user.as_deref().unwrap_or_default())
        }
        (_, Some(peer)) => peer.0.ip().to_string(),
        (_, None) => "an unknown address".to_owned(),
    };
    // Whether the caller may read a repository (catalog entries, mount sources).
    let may_read = |name: &str| match &caller {
        None => true,
        Some((gate, caller)) => gate.permits(caller, Action::Read, name),
    };
    // Only a registry with rules pays for keeping the request's head around.
    let head = caller
        .as_ref()
        .map(|_| (request.headers().clone(), request.uri().clone()));
    let may = |action: Action, name: &str| match (&caller, &head) {
        (Some((gate, caller)), Some((headers, uri))) => {
            gate.authorize(caller, action, name, headers, uri)
        }
        _ => Ok(()),
    };
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => {
            Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response())
        }
        (Route::Catalog, Method::GET) => discovery::catalog(app, request.uri(), &may_read).await,
        (Route::Tags(name), Method::GET) => discovery::tags(app, &name, request.uri()).await,
        (Route::Referrers(name, digest), Method::GET) => {
            discovery::referrers(app, &name, &digest, request.uri()).await
        }
        (Route::Manifest(name, reference), Method::GET) => {
            manifests::get(app, &name, &reference, request.headers(), true).await
        }
        (Route::Manifest(name, reference), Method::HEAD) => {
            manifests::get(app, &name, &reference, request.headers(), false).await
        }
        (Route::Manifest(name, reference), Method::PUT) => {
            manifests::put(app, &name, &reference, request, &may).await
        }
        (Route::Manifest(name, reference), Method::DELETE) => {
            manifests::delete(app, &name, &reference).await
        }
        (Route::Blob(name, digest), Method::GET) => {
            blobs::get(app, &name, &digest, request.headers(), true).await
        }
        (Route::Blob(name, digest), Method::HEAD) => {
            blobs::get(app, &name, &digest, request.headers(), false).await
        }
        (Route::Blob(name, digest), Method::DELETE) => blobs::delete(app, &name, &digest).await,
        (Route::Uploads(name), Method::POST) => {
            blobs::start(app, &name, request, &may_read, &client).await
        }
        (Route::Upload(name, id), Method::GET) => {
            let _busy = app.sessions.as_ref().map(|s| s.busy(&id));
            blobs::status(app, &name, &id).await
        }
        (Route::Upload(name, id), Method::PATCH) => {
            let _busy = app.sessions.as_ref().map(|s| s.busy(&id));
            blobs::patch(app, &name, &id, request).await
        }
        (Route::Upload(name, id), Method::PUT) => {
            let busy = app.sessions.as_ref().map(|s| s.busy(&id));
            let result = blobs::finish(app, &name, &id, request).await;
            drop(busy);
            // A PUT that failed before the digest check leaves the session
            // open for a retry; any other outcome ends it.
            if result.is_ok()
                || app
                    .storage
                    .upload_size(&name, &id)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
            {
                blobs::session_closed(app, &id);
            }
            result
        }
        (Route::Upload(name, id), Method::DELETE) => {
            let result = blobs::cancel(app, &name, &id).await;
            blobs::session_closed(app, &id);
            result
        }
        (_, method) => Err(RegistryError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("{method} is not supported on {}", request.uri().path()),
        )),
    }
}

/// A query parameter, percent-decoded.
pub(crate) fn query_param(uri: &Uri, key: &str) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A header as text, if present and readable.
pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body as a stream that fails when the client sends nothing
/// for the idle timeout.
pub(crate) fn body_stream(body: Body, idle: Duration) -> ByteStream {
    let stream = body.into_data_stream();
    Box::pin(futures_util::stream::unfold(
        Some(stream),
        move |state| async move {
            let mut stream = state?;
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(stream))),
                Ok(Some(Err(err))) => Some((Err(std::io::Error::other(err)), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the client sent nothing for {} s", idle.as_secs()),
                    )),
                    None,
                )),
            }
        },
    ))
}

/// A response with no body and the given status and headers.
pub(crate) fn empty(status: StatusCode, headers: &[(header::HeaderName, String)]) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    if !response.headers().contains_key(header::CONTENT_LENGTH) {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While a graceful shutdown drains, `/readyz` says 503 and a new upload
    /// gets 503 UNAVAILABLE, while other requests (and uploads already open)
    /// are still answered.
    #[tokio::test]
    async fn draining_refuses_new_uploads_only() {
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let storage = crate::storage::fs::FsStorage::open(dir.path()).expect("open");
        let draining = Arc::new(AtomicBool::new(false));
        let app = router_draining(storage, &ServerConfig::default(), draining.clone());
        let call = |method: &str, path: &str| {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request");
            app.clone().oneshot(request)
        };
        let open = call("POST", "/v2/a/blobs/uploads/").await.expect("POST");
        assert_eq!(open.status(), StatusCode::ACCEPTED);
        let location = open.headers()[header::LOCATION]
            .to_str()
            .expect("location")
            .to_owned();
        assert_eq!(
            call("GET", "/readyz").await.expect("ready").status(),
            StatusCode::OK
        );
        draining.store(true, Ordering::SeqCst);
        let refused = call("POST", "/v2/a/blobs/uploads/").await.expect("POST");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("UNAVAILABLE") && text.contains("shutting down"),
            "{text}"
        );
        let ready = call("GET", "/readyz").await.expect("readyz");
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            call("GET", "/v2/").await.expect("base").status(),
            StatusCode::OK
        );
        let empty = crate::digest::Digest::sha256_of(b"");
        let finish = call("PUT", &format!("{location}?digest={empty}"))
            .await
            .expect("PUT");
        assert_eq!(
            finish.status(),
            StatusCode::CREATED,
            "an open upload finishes"
        );
    }

    #[test]
    fn routes() {
        let s = |v: &str| v.to_owned();
        let cases = [
            ("/v2/", Some(Route::Base)),
            ("/v2", Some(Route::Base)),
            ("/v2/_catalog", Some(Route::Catalog)),
            ("/v2/a/b/tags/list", Some(Route::Tags(s("a/b")))),
            (
                "/v2/a/manifests/latest",
                Some(Route::Manifest(s("a"), s("latest"))),
            ),
            (
                "/v2/a/manifests/manifests/x",
                Some(Route::Manifest(s("a/manifests"), s("x"))),
            ),
            (
                "/v2/a/blobs/sha256:1",
                Some(Route::Blob(s("a"), s("sha256:1"))),
            ),
            (
                "/v2/foo/blobs/blobs/sha256:1",
                Some(Route::Blob(s("foo/blobs"), s("sha256:1"))),
            ),
            ("/v2/a/blobs/uploads/", Some(Route::Uploads(s("a")))),
            ("/v2/a/blobs/uploads", Some(Route::Uploads(s("a")))),
            (
                "/v2/a/b/blobs/uploads/123",
                Some(Route::Upload(s("a/b"), s("123"))),
            ),
            (
                "/v2/a/referrers/sha256:1",
                Some(Route::Referrers(s("a"), s("sha256:1"))),
            ),
            ("/v2/blobs/uploads/", None),
            ("/v2/manifests/x", None),
            ("/v3/a/manifests/x", None),
            ("/v2/a/unknown/x", None),
            ("/v2x", None),
        ];
        for (path, want) in cases {
            assert_eq!(Route::parse(path), want, "{path}");
        }
    }
}
