//! The distribution spec's error responses: a status code and a JSON body
//! `{"errors":[{"code","message","detail"}]}` with the spec's codes, for every
//! failure (400s included, never a bare 500).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::storage::StorageError;

/// One error response.
#[derive(Debug)]
pub struct RegistryError {
    /// HTTP status.
    pub status: StatusCode,
    /// The spec's code (`BLOB_UNKNOWN`, `DIGEST_INVALID`, …).
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Extra headers (`Range` on a 416).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl RegistryError {
    /// An error with a status, a spec code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        RegistryError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 404 `BLOB_UNKNOWN`.
    pub fn blob_unknown(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {what} is not in this repository"),
        )
    }

    /// 404 `MANIFEST_UNKNOWN`.
    pub fn manifest_unknown(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest {what} is not in this repository"),
        )
    }

    /// 404 `NAME_UNKNOWN`.
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name} is not known to this registry"),
        )
    }

    /// 400 `DIGEST_INVALID`.
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }
}

impl From<StorageError> for RegistryError {
    fn from(err: StorageError) -> Self {
        let message = err.to_string();
        match err {
            StorageError::Name(_) => Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message),
            StorageError::UploadUnknown(_) => {
                Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", message)
            }
            StorageError::OutOfOrder { size, .. } => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                message,
            )
            .with_header(header::RANGE, &upload_range(size)),
            StorageError::Digest(_) => Self::digest_invalid(message),
            StorageError::Body { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message)
            }
            StorageError::ManifestBlob(_) => {
                Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
            }
            StorageError::BlobMissing(_) => {
                Self::new(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", message)
            }
            StorageError::Io { .. } | StorageError::Corrupt { .. } | StorageError::InUse { .. } => {
                tracing::error!("storage: {message}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    format!("storage failure: {message}"),
                )
            }
        }
    }
}

/// The `Range` header value of an upload holding `size` bytes: `0-<last>`,
/// and `0-0` when nothing has arrived yet (what distribution answers too).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{"code": self.code, "message": self.message, "detail": null}]
        });
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.to_string(),
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
