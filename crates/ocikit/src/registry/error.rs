//! What can go wrong talking to a registry, each error carrying the registry,
//! repository or URL it is about, and (for 401/403) the credential source that
//! was tried and the flag that fixes it.

use std::path::PathBuf;

use crate::digest::Digest;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached at all (DNS, connection refused, TLS
    /// handshake, or the connection broke before an answer).
    #[error("{url}: cannot reach the registry: {reason}{hint}")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// The transport error, with its causes.
        reason: String,
        /// A sentence on how to fix it (TLS flags, certs.d), or empty.
        hint: String,
    },
    /// The manifest, blob or repository does not exist.
    #[error("{url}: {what} not found ({status}{detail})")]
    NotFound {
        /// The URL that answered 404.
        url: String,
        /// What was looked for, e.g. `manifest latest` or `blob sha256:…`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's own error code and message, `: CODE message`, or empty.
        detail: String,
    },
    /// 401: the registry wants (other) credentials.
    #[error("{0}")]
    Unauthorized(Box<AuthFailure>),
    /// 403: the credentials are valid but not allowed to do this.
    #[error("{0}")]
    Forbidden(Box<AuthFailure>),
    /// Any other unexpected HTTP status.
    #[error("{method} {url}: {status}{detail}")]
    Status {
        /// The request method.
        method: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's own error code and message, `: CODE message`, or empty.
        detail: String,
    },
    /// Content did not hash to the digest it was asked for.
    #[error("{url}: content does not match its digest: expected {expected}, got {actual}; the registry served corrupt or substituted data")]
    DigestMismatch {
        /// Where the content came from.
        url: String,
        /// The digest asked for (or announced by the registry).
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A manifest larger than [`crate::manifest::MAX_MANIFEST_SIZE`].
    #[error("{url}: manifest is larger than the {limit}-byte limit; refusing to read it")]
    ManifestTooLarge {
        /// Where it came from.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The registry answered something that breaks the protocol.
    #[error("{url}: invalid registry response: {reason}")]
    InvalidResponse {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A credential source (auth file, credential helper, token endpoint) failed.
    #[error("credentials from {source_name}: {reason}")]
    Credentials {
        /// The auth file, helper or endpoint.
        source_name: String,
        /// What was wrong and how to fix it.
        reason: String,
    },
    /// A TLS file (CA, client certificate or key) could not be used.
    #[error("{}: {reason}", .path.display())]
    Tls {
        /// The file or directory.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The HTTP client itself could not be built.
    #[error("cannot set up the HTTP client for {registry}: {reason}")]
    Setup {
        /// The registry.
        registry: String,
        /// What failed.
        reason: String,
    },
    /// Reading the data to upload failed.
    #[error("{url}: reading the blob to upload failed: {source}")]
    Source {
        /// The upload URL.
        url: String,
        /// The I/O error of the source.
        #[source]
        source: std::io::Error,
    },
    /// The data to upload was not the size or digest the caller promised.
    #[error("{url}: the blob to upload {reason}")]
    BadUpload {
        /// The upload URL.
        url: String,
        /// What was wrong with the data.
        reason: String,
    },
    /// The referrers tag schema's tag (`sha256-<hex>`) holds something that
    /// is not the image index the spec puts there, so referrers can be
    /// neither read from it nor added to it.
    #[error("{repository}:{tag}: cannot use the referrers tag schema: {reason}; that tag is reserved for the index of the referrers of a manifest (distribution spec), so move what it holds to another tag or delete it")]
    ReferrersTag {
        /// `registry/repository`.
        repository: String,
        /// The tag.
        tag: String,
        /// What it holds instead.
        reason: String,
    },
    /// A registry host, repository or reference is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// `registry`, `repository`, `reference`, …
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
}

/// The details of a 401 or 403: who refused, which credential was tried,
/// and what the user can do about it.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// 401 or 403.
    pub status: u16,
    /// The registry as the user wrote it.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// The credential source that was tried (`--dest-creds`,
    /// `~/.docker/config.json`, `anonymous`, …).
    pub source_tried: String,
    /// Auth files that were looked in, when the request went anonymous.
    pub searched: Vec<String>,
    /// What was refused: `pull`, `push` or `delete`.
    pub action: &'static str,
    /// The flag the user can pass to fix it (`--creds`, `--dest-creds`, …).
    pub flag: &'static str,
    /// The registry's own error message, if it gave one.
    pub detail: String,
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", self.detail)
        };
        if self.status == 403 {
            return write!(
                f,
                "{}/{}: 403 Forbidden (credentials from {} may not {}{detail}; try other credentials with {})",
                self.registry, self.repository, self.source_tried, self.action, self.flag
            );
        }
        write!(
            f,
            "{}/{}: 401 Unauthorized ({})",
            self.registry,
            self.repository,
            auth_hint(
                &self.source_tried,
                &self.searched,
                self.flag,
                &self.registry,
                &self.detail
            )
        )
    }
}

fn auth_hint(
    source: &str,
    searched: &[String],
    flag: &str,
    registry: &str,
    detail: &str,
) -> String {
    let what = if source == "anonymous" {
        if searched.is_empty() {
            format!("no credentials for {registry}: no auth file found")
        } else {
            format!("no credentials for {registry} in {}", searched.join(", "))
        }
    } else {
        format!("the credentials from {source} were rejected")
    };
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    format!("{what}{detail}; try {flag} USER:PASSWORD or --authfile")
}

impl RegistryError {
    /// Whether the manifest, blob or repository is unknown (cosign's exit 11,
    /// a skippable referrers tag, …), as opposed to any other failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }

    /// Whether the failure was an authentication or authorisation refusal.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized(_) | RegistryError::Forbidden(_)
        )
    }
}

/// The registry's JSON error body (`{"errors":[{"code","message"}]}`) as
/// `: CODE message`, or the start of a non-JSON body, or empty.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Body>(body) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(": {short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_401_names_registry_files_and_flag() {
        let err = RegistryError::Unauthorized(Box::new(AuthFailure {
            status: 401,
            registry: "reg.example:5000".into(),
            repository: "app".into(),
            source_tried: "anonymous".into(),
            searched: vec!["~/.docker/config.json".into()],
            action: "push",
            flag: "--dest-creds",
            detail: String::new(),
        }));
        assert_eq!(
            err.to_string(),
            "reg.example:5000/app: 401 Unauthorized (no credentials for reg.example:5000 in \
             ~/.docker/config.json; try --dest-creds USER:PASSWORD or --authfile)"
        );
        assert!(err.is_auth());
        assert!(!err.is_not_found());
    }

    #[test]
    fn rejected_401_names_the_source() {
        let failure = AuthFailure {
            status: 401,
            registry: "r".into(),
            repository: "a/b".into(),
            source_tried: "--src-creds".into(),
            searched: vec![],
            action: "pull",
            flag: "--src-creds",
            detail: "UNAUTHORIZED authentication required".into(),
        };
        let text = RegistryError::Unauthorized(Box::new(failure.clone())).to_string();
        assert!(
            text.contains("credentials from --src-creds were rejected"),
            "{text}"
        );
        assert!(
            text.contains("UNAUTHORIZED authentication required"),
            "{text}"
        );
        let forbidden = AuthFailure {
            status: 403,
            detail: String::new(),
            ..failure
        };
        assert_eq!(
            RegistryError::Forbidden(Box::new(forbidden)).to_string(),
            "r/a/b: 403 Forbidden (credentials from --src-creds may not pull; \
             try other credentials with --src-creds)"
        );
    }

    #[test]
    fn error_details_from_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ": MANIFEST_UNKNOWN manifest unknown",
            ),
            (b"404 page not found\n", ": 404 page not found"),
            (b"", ""),
            (br#"{"errors":[]}"#, ": {\"errors\":[]}"),
        ];
        for (body, want) in cases {
            assert_eq!(error_detail(body), *want);
        }
    }
}
