//! Blob endpoints: GET/HEAD (with `Range`), DELETE, and the upload protocol
//! (POST, POST `?digest=`, POST `?mount=&from=`, PATCH chunked or streamed,
//! PUT `?digest=`, GET status, DELETE).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::error::upload_range;
use super::{body_stream, empty, header_str, query_param, HandlerResult, RegistryError, Shared};
use crate::digest::Digest;
use crate::name::validate_repository;
use crate::storage::{ByteRange, Storage};

fn parse_digest(text: &str) -> Result<Digest, RegistryError> {
    text.parse()
        .map_err(|e: crate::digest::DigestError| RegistryError::digest_invalid(e.to_string()))
}

/// A `Range: bytes=…` header against a blob of `size` bytes: `Ok(None)` for
/// no (or an unreadable) header, `Err` for a range outside the blob.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<ByteRange>, RegistryError> {
    let Some(spec) = header_str(headers, header::RANGE) else {
        return Ok(None);
    };
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    // Several ranges in one request are legal HTTP but no registry client
    // sends them; answer with the whole blob as HTTP allows.
    if spec.contains(',') {
        return Ok(None);
    }
    let unsatisfiable = || {
        RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UNKNOWN",
            format!("range {spec:?} is outside the blob of {size} bytes"),
        )
        .with_header(header::CONTENT_RANGE, &format!("bytes */{size}"))
    };
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let Ok(suffix) = suffix.parse::<u64>() else {
                return Ok(None);
            };
            if suffix == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (start, end) => {
            let Ok(start) = start.parse::<u64>() else {
                return Ok(None);
            };
            let end = if end.is_empty() {
                size.saturating_sub(1)
            } else {
                match end.parse::<u64>() {
                    Ok(end) => end.min(size.saturating_sub(1)),
                    Err(_) => return Ok(None),
                }
            };
            if start >= size || end < start {
                return Err(unsatisfiable());
            }
            (start, end)
        }
    };
    Ok(Some(ByteRange { start, end }))
}

/// GET or HEAD `/v2/<name>/blobs/<digest>`.
pub(super) async fn get<S: Storage>(
    app: &Shared<S>,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    with_body: bool,
) -> HandlerResult {
    let digest = parse_digest(digest)?;
    let wants_range = headers.contains_key(header::RANGE);
    let (size, range) = if wants_range || !with_body {
        let Some(size) = app.storage.blob_size(name, &digest).await? else {
            return Err(RegistryError::blob_unknown(&digest));
        };
        (Some(size), parse_range(headers, size)?)
    } else {
        (None, None)
    };
    let mut response_headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (
            header::HeaderName::from_static("docker-content-digest"),
            digest.to_string(),
        ),
    ];
    if !with_body {
        response_headers.push((header::CONTENT_LENGTH, size.unwrap_or(0).to_string()));
        return Ok(empty(StatusCode::OK, &response_headers));
    }
    let Some(read) = app.storage.blob_read(name, &digest, range).await? else {
        return Err(RegistryError::blob_unknown(&digest));
    };
    let status = match range {
        Some(r) => {
            response_headers.push((header::CONTENT_LENGTH, r.len().to_string()));
            response_headers.push((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end, read.size),
            ));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            response_headers.push((header::CONTENT_LENGTH, read.size.to_string()));
            StatusCode::OK
        }
    };
    let mut response = Response::new(Body::from_stream(read.stream));
    *response.status_mut() = status;
    for (name, value) in response_headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// DELETE `/v2/<name>/blobs/<digest>`.
pub(super) async fn delete<S: Storage>(app: &Shared<S>, name: &str, digest: &str) -> HandlerResult {
    let digest = parse_digest(digest)?;
    if app.storage.blob_delete(name, &digest).await? {
        Ok(empty(StatusCode::ACCEPTED, &[]))
    } else {
        Err(RegistryError::blob_unknown(&digest))
    }
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn session_response(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    empty(
        status,
        &[
            (header::LOCATION, upload_location(name, id)),
            (header::RANGE, upload_range(size)),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_owned(),
            ),
        ],
    )
}

fn created(name: &str, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
}

/// POST `/v2/<name>/blobs/uploads/`: a session, a whole blob with
/// `?digest=`, or a cross-repository mount with `?mount=&from=`.
///
/// A mount happens only from a repository the caller may read
/// (`may_read`); otherwise the answer is the same 202 session as for a blob
/// that is not there, so a client learns nothing about a repository it may
/// not read and must upload the content (zot's CVE-2024-39897). Every other
/// way a blob enters a repository needs its full content, digest-checked:
/// the shared store deduplicates bytes the client has proven it holds.
pub(super) async fn start<S: Storage>(
    app: &Shared<S>,
    name: &str,
    request: Request,
    may_read: &(dyn Fn(&str) -> bool + Sync),
    client: &str,
) -> HandlerResult {
    if let Some(mount) = query_param(request.uri(), "mount") {
        let digest = parse_digest(&mount)?;
        // Mount only from a named, valid repository; otherwise (or when the
        // blob is not there) fall back to an ordinary session, as the spec says.
        if let Some(from) = query_param(request.uri(), "from") {
            if validate_repository(&from).is_ok()
                && may_read(&from)
                && app.storage.blob_mount(name, &from, &digest).await?
            {
                return Ok(created(name, &digest));
            }
        }
        return open_session(app, name, client).await;
    }
    if let Some(digest) = query_param(request.uri(), "digest") {
        let digest = parse_digest(&digest)?;
        let id = app.storage.upload_start(name).await?;
        let body = body_stream(request.into_body(), app.idle);
        if let Err(err) = app.storage.upload_append(name, &id, None, body).await {
            let _ = app.storage.upload_cancel(name, &id).await;
            return Err(err.into());
        }
        app.storage.upload_finish(name, &id, &digest).await?;
        return Ok(created(name, &digest));
    }
    open_session(app, name, client).await
}

const OPEN_SESSIONS: &str = "ocikit_upload_sessions_open";
const OPEN_SESSIONS_HELP: &str = "Upload sessions of all clients counting against their client's limit, as of the last session opened or ended.";

/// A 202 upload session for `client`, or a 429 when it has its limit open.
async fn open_session<S: Storage>(app: &Shared<S>, name: &str, client: &str) -> HandlerResult {
    let Some(sessions) = &app.sessions else {
        let id = app.storage.upload_start(name).await?;
        return Ok(session_response(StatusCode::ACCEPTED, name, &id, 0));
    };
    let (reserved, open) = sessions.reserve(client);
    app.metrics
        .gauge(OPEN_SESSIONS, OPEN_SESSIONS_HELP, open as f64);
    let Ok(reservation) = reserved else {
        app.metrics.count(
            "ocikit_upload_sessions_refused_total",
            "Upload sessions refused because their client had its limit open.",
            1.0,
        );
        // Slots free as uploads finish; idle ones lapse after `idle`.
        let idle = sessions.idle().as_secs().max(1);
        let retry = idle.min(10);
        tracing::warn!(
            "refusing an upload session: {client} has {} open",
            sessions.max()
        );
        return Err(RegistryError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            format!(
                "{client} already has {} upload sessions open, the most one client may have; \
                 finish (PUT) or cancel (DELETE) one, or let idle ones lapse ({idle} s), \
                 or ask the operator to raise oci-serve --max-uploads-per-client (0 = no limit)",
                sessions.max()
            ),
        )
        .with_header(header::RETRY_AFTER, &retry.to_string()));
    };
    let id = app.storage.upload_start(name).await;
    sessions.bind(reservation, id.as_ref().ok().map(String::as_str));
    let id = id?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// Upload session `id` has ended (finished or cancelled): its slot is free.
pub(super) fn session_closed<S: Storage>(app: &Shared<S>, id: &str) {
    if let Some(sessions) = &app.sessions {
        let open = sessions.close(id);
        app.metrics
            .gauge(OPEN_SESSIONS, OPEN_SESSIONS_HELP, open as f64);
    }
}

/// GET `/v2/<name>/blobs/uploads/<id>`: how much has arrived.
pub(super) async fn status<S: Storage>(app: &Shared<S>, name: &str, id: &str) -> HandlerResult {
    match app.storage.upload_size(name, id).await? {
        Some(size) => Ok(session_response(StatusCode::NO_CONTENT, name, id, size)),
        None => Err(crate::storage::StorageError::UploadUnknown(id.to_owned()).into()),
    }
}

/// A `Content-Range: <start>-<end>` header of a chunk, checked against its
/// `Content-Length`.
fn chunk_start(headers: &HeaderMap) -> Result<Option<u64>, RegistryError> {
    let Some(value) = header_str(headers, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("Content-Range {value:?} is not <start>-<end>"),
        )
    };
    let text = value
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.trim().parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    if let Some(length) = header_str(headers, header::CONTENT_LENGTH) {
        if length.parse::<u64>().ok() != Some(end - start + 1) {
            return Err(RegistryError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!(
                    "Content-Range {value:?} is {} bytes but Content-Length is {length}",
                    end - start + 1
                ),
            ));
        }
    }
    Ok(Some(start))
}

/// PATCH `/v2/<name>/blobs/uploads/<id>`: a chunk (with `Content-Range`) or
/// a streamed body (without).
pub(super) async fn patch<S: Storage>(
    app: &Shared<S>,
    name: &str,
    id: &str,
    request: Request,
) -> HandlerResult {
    let start = match chunk_start(request.headers()) {
        Ok(start) => start,
        Err(err) => {
            // Answer with where the upload stands, so the client can resume.
            let size = app.storage.upload_size(name, id).await?;
            return Err(match size {
                Some(size) => err.with_header(header::RANGE, &upload_range(size)),
                None => crate::storage::StorageError::UploadUnknown(id.to_owned()).into(),
            });
        }
    };
    let body = body_stream(request.into_body(), app.idle);
    let size = app.storage.upload_append(name, id, start, body).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, id, size))
}

/// PUT `/v2/<name>/blobs/uploads/<id>?digest=`: the last chunk (if any) and
/// the digest the whole upload must have.
pub(super) async fn finish<S: Storage>(
    app: &Shared<S>,
    name: &str,
    id: &str,
    request: Request,
) -> HandlerResult {
    let Some(digest) = query_param(request.uri(), "digest") else {
        return Err(RegistryError::digest_invalid(
            "PUT of an upload needs ?digest=<algorithm>:<hex>",
        ));
    };
    let digest = parse_digest(&digest)?;
    let start = chunk_start(request.headers())?;
    let body = body_stream(request.into_body(), app.idle);
    app.storage.upload_append(name, id, start, body).await?;
    app.storage.upload_finish(name, id, &digest).await?;
    Ok(created(name, &digest))
}

/// DELETE `/v2/<name>/blobs/uploads/<id>`.
pub(super) async fn cancel<S: Storage>(app: &Shared<S>, name: &str, id: &str) -> HandlerResult {
    if app.storage.upload_cancel(name, id).await? {
        Ok(empty(StatusCode::NO_CONTENT, &[]))
    } else {
        Err(crate::storage::StorageError::UploadUnknown(id.to_owned()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        type Want = Result<Option<(u64, u64)>, &'static str>;
        let cases: [(&str, Want); 9] = [
            ("bytes=0-9", Ok(Some((0, 9)))),
            ("bytes=5-", Ok(Some((5, 99)))),
            ("bytes=-10", Ok(Some((90, 99)))),
            ("bytes=90-200", Ok(Some((90, 99)))),
            ("bytes=100-", Err("outside the blob of 100 bytes")),
            ("bytes=9-5", Err("outside")),
            ("items=0-1", Ok(None)),
            ("bytes=0-1,3-4", Ok(None)),
            ("bytes=x-1", Ok(None)),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::RANGE, value.parse().expect("header"));
            match (parse_range(&headers, 100), want) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got.map(|r| (r.start, r.end)), want, "{value}")
                }
                (Err(err), Err(words)) => {
                    assert_eq!(err.status, StatusCode::RANGE_NOT_SATISFIABLE);
                    assert!(err.message.contains(words), "{value}: {}", err.message);
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn chunk_ranges() {
        let check = |range: &str, length: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_RANGE, range.parse().expect("header"));
            if let Some(length) = length {
                headers.insert(header::CONTENT_LENGTH, length.parse().expect("header"));
            }
            chunk_start(&headers)
        };
        assert_eq!(check("0-9", Some("10")).expect("ok"), Some(0));
        assert_eq!(check("10-19", None).expect("ok"), Some(10));
        assert_eq!(check("bytes 10-19/*", None).expect("ok"), Some(10));
        let err = check("0-9", Some("5")).expect_err("length");
        assert!(
            err.message.contains("Content-Length is 5"),
            "{}",
            err.message
        );
        let err = check("nine", None).expect_err("bad");
        assert!(err.message.contains("not <start>-<end>"), "{}", err.message);
    }
}
