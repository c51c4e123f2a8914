//! Manifest endpoints: GET/HEAD by tag or digest (honouring `Accept`), PUT
//! (exact bytes, 4 MiB cap, every referenced blob present, `subject` accepted
//! even when missing) and DELETE of manifests and tags.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{body_stream, empty, header_str, HandlerResult, RegistryError, Shared};
use crate::access::Action;
use crate::digest::{Digest, Hasher};
use crate::manifest::{self, Manifest, MAX_MANIFEST_SIZE};
use crate::name::validate_tag;
use crate::storage::{ManifestRef, NewManifest, Storage};

fn parse_reference(reference: &str) -> Result<ManifestRef, RegistryError> {
    if reference.contains(':') {
        return reference
            .parse()
            .map(ManifestRef::Digest)
            .map_err(|e: crate::digest::DigestError| RegistryError::digest_invalid(e.to_string()));
    }
    validate_tag(reference)
        .map(|()| ManifestRef::Tag(reference.to_owned()))
        .map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", e.to_string()))
}

/// Whether an `Accept` header lets the client take `media_type`. No header,
/// a wildcard, or a listed type (parameters ignored) accepts it.
pub(crate) fn accepts(accept: Option<&str>, media_type: &str) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|item| {
        let item = item.split(';').next().unwrap_or("").trim();
        item == media_type || item == "*/*" || item == "application/*"
    })
}

/// GET or HEAD `/v2/<name>/manifests/<reference>`: the hot path, served from
/// the storage's memory when it can.
pub(super) async fn get<S: Storage>(
    app: &Shared<S>,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    with_body: bool,
) -> HandlerResult {
    let reference = parse_reference(reference)
        .map_err(|_| RegistryError::manifest_unknown(format!("{name}:{reference}")))?;
    let Some(stored) = app.storage.manifest_get(name, &reference).await? else {
        return Err(RegistryError::manifest_unknown(format!(
            "{name}:{reference}"
        )));
    };
    // Several Accept headers are allowed; any of them may list the type.
    let accept_values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accepted = accept_values.is_empty()
        || accept_values
            .iter()
            .any(|value| accepts(Some(value), &stored.media_type));
    if !accepted {
        return Err(RegistryError::manifest_unknown(format!(
            "{name}:{reference} of type {} (the request's Accept header does not list it)",
            stored.media_type
        )));
    }
    let length = stored.bytes.len();
    let mut response = Response::new(if with_body {
        Body::from(stored.bytes)
    } else {
        Body::empty()
    });
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&stored.media_type) {
        h.insert(header::CONTENT_TYPE, value);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(&stored.digest.to_string()) {
        h.insert("docker-content-digest", value);
    }
    Ok(response)
}

/// How much of an oversized manifest body is read (and discarded) before the
/// 413 goes out, so that an ordinary client gets to read the answer instead
/// of a reset connection; larger declared bodies are refused at once.
const DRAIN_LIMIT: u64 = 4 * MAX_MANIFEST_SIZE as u64;

/// Reads a manifest body, refusing more than [`MAX_MANIFEST_SIZE`] bytes.
async fn read_limited(request: Request, idle: std::time::Duration) -> Result<Bytes, RegistryError> {
    let too_large = |n: u64| {
        RegistryError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifest of {n} bytes or more is over the 4 MiB limit"),
        )
    };
    let declared = header_str(request.headers(), header::CONTENT_LENGTH)
        .and_then(|length| length.parse::<u64>().ok());
    if declared.is_some_and(|length| length > DRAIN_LIMIT) {
        return Err(too_large(declared.unwrap_or_default()));
    }
    let mut body = body_stream(request.into_body(), idle);
    let mut buffer = BytesMut::new();
    let mut seen = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!("manifest body broke off: {e}"),
            )
        })?;
        seen += chunk.len() as u64;
        if seen > MAX_MANIFEST_SIZE as u64 {
            if seen > DRAIN_LIMIT {
                break;
            }
            buffer.clear();
            continue;
        }
        buffer.extend_from_slice(&chunk);
    }
    if seen > MAX_MANIFEST_SIZE as u64 {
        return Err(too_large(seen));
    }
    Ok(buffer.freeze())
}

/// PUT `/v2/<name>/manifests/<reference>`. Moving an existing tag to
/// another manifest is an `update` in the access rules, anything else a
/// `create`; `may` answers whether the caller is allowed.
pub(super) async fn put<S: Storage>(
    app: &Shared<S>,
    name: &str,
    reference: &str,
    request: Request,
    may: &(dyn Fn(Action, &str) -> Result<(), RegistryError> + Sync),
) -> HandlerResult {
    let reference = parse_reference(reference)?;
    let content_type = header_str(request.headers(), header::CONTENT_TYPE)
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_owned());
    let bytes = read_limited(request, app.idle).await?;
    let invalid =
        |message: String| RegistryError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message);
    let parsed =
        Manifest::parse(&bytes, content_type.as_deref()).map_err(|e| invalid(e.to_string()))?;
    let digest = match &reference {
        ManifestRef::Digest(expected) => {
            let mut hasher = Hasher::for_digest(expected);
            hasher.update(&bytes);
            hasher
                .verify(expected)
                .map_err(|e| RegistryError::digest_invalid(e.to_string()))?;
            expected.clone()
        }
        ManifestRef::Tag(_) => Digest::sha256_of(&bytes),
    };
    for blob in parsed.references() {
        // Non-distributable layers live at their `urls`, not here.
        if blob.extra.contains_key("urls") {
            continue;
        }
        if app.storage.blob_size(name, &blob.digest).await?.is_none() {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "manifest refers to {} {} which is not in {name}; push it first",
                    blob.media_type, blob.digest
                ),
            ));
        }
    }
    let media_type = match content_type {
        Some(t) if manifest::is_manifest_type(&t) => t,
        _ => parsed.media_type.clone(),
    };
    let subject = parsed.subject.as_ref().map(|s| s.digest.to_string());
    let tag = match &reference {
        ManifestRef::Tag(tag) => Some(tag.as_str()),
        ManifestRef::Digest(_) => None,
    };
    let moves_a_tag = match &reference {
        ManifestRef::Tag(_) => app
            .storage
            .manifest_get(name, &reference)
            .await?
            .is_some_and(|existing| existing.digest != digest),
        ManifestRef::Digest(_) => false,
    };
    may(
        if moves_a_tag {
            Action::Update
        } else {
            Action::Create
        },
        name,
    )?;
    app.storage
        .manifest_put(
            name,
            tag,
            NewManifest {
                digest: digest.clone(),
                media_type,
                bytes,
                manifest: parsed,
            },
        )
        .await?;
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
        (
            header::HeaderName::from_static("docker-content-digest"),
            digest.to_string(),
        ),
    ];
    if let Some(subject) = subject {
        headers.push((header::HeaderName::from_static("oci-subject"), subject));
    }
    Ok(empty(StatusCode::CREATED, &headers))
}

/// DELETE `/v2/<name>/manifests/<digest or tag>`.
pub(super) async fn delete<S: Storage>(
    app: &Shared<S>,
    name: &str,
    reference: &str,
) -> HandlerResult {
    let deleted = match parse_reference(reference)? {
        ManifestRef::Digest(digest) => app.storage.manifest_delete(name, &digest).await?,
        ManifestRef::Tag(tag) => app.storage.tag_delete(name, &tag).await?,
    };
    if deleted {
        Ok(empty(StatusCode::ACCEPTED, &[]))
    } else {
        Err(RegistryError::manifest_unknown(format!(
            "{name}:{reference}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header() {
        let oci = manifest::OCI_MANIFEST;
        let cases = [
            (None, true),
            (Some(""), true),
            (Some("*/*"), true),
            (Some(manifest::ACCEPT_ALL), true),
            (
                Some("application/vnd.oci.image.manifest.v1+json; q=0.5"),
                true,
            ),
            (Some(manifest::DOCKER_MANIFEST), false),
            (Some("application/json"), false),
        ];
        for (accept, want) in cases {
            assert_eq!(accepts(accept, oci), want, "{accept:?}");
        }
    }
}
