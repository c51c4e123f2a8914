//! Manifests, tags and referrers on a registry: fetched with the full
//! `Accept` list (without it distribution answers 404 or rewrites Docker
//! v2s2 to schema 1), read with a size bound, and checked against the digest
//! asked for (or the `Docker-Content-Digest` the registry announced for a tag)
//! before anyone sees a byte.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode};

use super::auth::Access;
use super::client::{read_limited, Repository};
use super::RegistryError;
use crate::digest::{Algorithm, Digest};
use crate::manifest::{self, Descriptor, Manifest, MAX_MANIFEST_SIZE};

/// A manifest as the registry served it: the exact bytes, its media type and
/// its (verified) digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes; hashed, stored and copied as they are.
    pub bytes: Bytes,
    /// The media type (`Content-Type`, or the body's `mediaType`).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

impl FetchedManifest {
    /// A descriptor for this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// A reference is a digest if it has a colon (tags cannot).
fn parse_reference(reference: &str) -> Result<Option<Digest>, RegistryError> {
    if reference.contains(':') {
        return reference
            .parse::<Digest>()
            .map(Some)
            .map_err(|e| RegistryError::InvalidInput {
                what: "reference",
                value: reference.to_owned(),
                reason: e.to_string(),
            });
    }
    crate::name::validate_tag(reference).map_err(|e| RegistryError::InvalidInput {
        what: "tag",
        value: reference.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(None)
}

/// The media type without parameters.
fn content_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let main = value.split(';').next().unwrap_or_default().trim();
    (!main.is_empty()).then(|| main.to_owned())
}

/// `Docker-Content-Digest`, if present and in a form ocikit verifies.
fn announced_digest(headers: &reqwest::header::HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The media type of a manifest body when the header is missing or generic.
fn media_type_of(bytes: &[u8], header: Option<String>) -> String {
    match header {
        Some(t) if manifest::is_manifest_type(&t) || t.starts_with("application/vnd.") => t,
        other => Manifest::parse(bytes, None)
            .map(|m| m.media_type)
            .ok()
            .or(other)
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_owned()),
    }
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(value: &str) -> Option<&str> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(target)
    })
}

/// A manifest-sized response body: read up to [`MAX_MANIFEST_SIZE`] and
/// refused beyond it, so a hostile registry cannot make us buffer more.
pub(crate) async fn read_manifest_body(
    resp: reqwest::Response,
    url: &url::Url,
) -> Result<Vec<u8>, RegistryError> {
    let bytes = read_limited(resp, MAX_MANIFEST_SIZE + 1)
        .await
        .map_err(|e| RegistryError::Connect {
            url: url.to_string(),
            reason: super::client::error_chain(&e),
            hint: String::new(),
        })?;
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(RegistryError::ManifestTooLarge {
            url: url.to_string(),
            limit: MAX_MANIFEST_SIZE,
        });
    }
    Ok(bytes)
}

impl Repository {
    /// Fetches a manifest or index by tag or digest, with the full `Accept`
    /// list, bounded by [`MAX_MANIFEST_SIZE`], verified against the digest
    /// asked for (or the registry's `Docker-Content-Digest` for a tag).
    pub async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let asked = parse_reference(reference)?;
        let url = self.url(&format!("manifests/{reference}")).await?;
        let resp = self
            .send(Access::Pull, &[], |http| {
                http.get(url.clone()).header(ACCEPT, manifest::ACCEPT_ALL)
            })
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self
                .fail(
                    resp,
                    &Method::GET,
                    Access::Pull,
                    &format!("manifest {reference}"),
                )
                .await);
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_SIZE as u64)
        {
            return Err(RegistryError::ManifestTooLarge {
                url: url.to_string(),
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let header_type = content_type(resp.headers());
        let announced = announced_digest(resp.headers());
        let bytes = read_manifest_body(resp, &url).await?;
        let expected = asked.or(announced);
        let digest = match expected {
            Some(expected) => {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        url: url.to_string(),
                        expected,
                        actual,
                    });
                }
                expected
            }
            None => Digest::of(Algorithm::Sha256, &bytes),
        };
        let media_type = media_type_of(&bytes, header_type);
        Ok(FetchedManifest {
            bytes: Bytes::from(bytes),
            media_type,
            digest,
        })
    }

    /// Looks a manifest up without its body: `None` when it does not exist.
    pub async fn head_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let asked = parse_reference(reference)?;
        let url = self.url(&format!("manifests/{reference}")).await?;
        let resp = self
            .send(Access::Pull, &[], |http| {
                http.head(url.clone()).header(ACCEPT, manifest::ACCEPT_ALL)
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => {
                return Err(self
                    .fail(
                        resp,
                        &Method::HEAD,
                        Access::Pull,
                        &format!("manifest {reference}"),
                    )
                    .await)
            }
        }
        let header_type = content_type(resp.headers());
        let digest = asked.or_else(|| announced_digest(resp.headers()));
        let size = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (digest, size, header_type) {
            (Some(digest), Some(size), Some(media_type))
                if manifest::is_manifest_type(&media_type)
                    || media_type.starts_with("application/vnd.") =>
            {
                Ok(Some(Descriptor::new(media_type, digest, size)))
            }
            // Not enough in the headers: fetch it (verified) instead.
            _ => match self.get_manifest(reference).await {
                Ok(fetched) => Ok(Some(fetched.descriptor())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Uploads a manifest under a tag or its digest and returns its digest
    /// (sha256 of the exact bytes, or the digest given as reference).
    ///
    /// A manifest with a `subject` is a referrer: when the registry does not
    /// confirm with an `OCI-Subject` header that its referrers API indexed it
    /// (distribution 2.8 has no such API), the subject's referrers tag schema
    /// index is updated as the distribution spec requires of clients (see
    /// [`Repository::add_to_referrers_tag`]).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, RegistryError> {
        let (digest, indexed_by_registry) = self
            .put_manifest_only(reference, media_type, bytes.clone())
            .await?;
        if !indexed_by_registry {
            self.record_referrer(&digest, media_type, &bytes).await?;
        }
        Ok(digest)
    }

    /// Uploads a manifest and nothing else; also says whether the registry
    /// answered with an `OCI-Subject` header (its referrers API indexed it).
    pub(crate) async fn put_manifest_only(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(Digest, bool), RegistryError> {
        let asked = parse_reference(reference)?;
        let digest = match asked {
            Some(asked) => {
                let actual = Digest::of(asked.algorithm(), &bytes);
                if actual != asked {
                    return Err(RegistryError::BadUpload {
                        url: self.display_name(),
                        reason: format!(
                            "manifest hashes to {actual}, not to {asked} it was to be stored under"
                        ),
                    });
                }
                asked
            }
            None => Digest::sha256_of(&bytes),
        };
        let url = self.url(&format!("manifests/{reference}")).await?;
        let resp = self
            .send(Access::Push, &[], |http| {
                http.put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(self
                .fail(
                    resp,
                    &Method::PUT,
                    Access::Push,
                    &format!("manifest {reference}"),
                )
                .await);
        }
        if let Some(stored) = announced_digest(resp.headers()) {
            if stored.algorithm() == digest.algorithm() && stored != digest {
                return Err(RegistryError::DigestMismatch {
                    url: url.to_string(),
                    expected: digest,
                    actual: stored,
                });
            }
        }
        let indexed = resp.headers().contains_key("oci-subject");
        Ok((digest, indexed))
    }

    /// Deletes a manifest by digest (the registry must allow deletes).
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{digest}")).await?;
        let resp = self
            .send(Access::Delete, &[], |http| http.delete(url.clone()))
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self
            .fail(
                resp,
                &Method::DELETE,
                Access::Delete,
                &format!("manifest {digest}"),
            )
            .await)
    }

    /// Every tag of the repository, following `Link` pagination.
    pub async fn tags(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut next = Some(self.url("tags/list").await?);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: "more than 10000 pages of tags; the registry's pagination loops".into(),
                });
            }
            let resp = self
                .send(Access::Pull, &[], |http| http.get(url.clone()))
                .await?;
            if resp.status() != StatusCode::OK {
                return Err(self
                    .fail(resp, &Method::GET, Access::Pull, "repository")
                    .await);
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .and_then(|target| url.join(target).ok());
            let body = read_limited(resp, 64 << 20)
                .await
                .map_err(|e| RegistryError::Connect {
                    url: url.to_string(),
                    reason: super::client::error_chain(&e),
                    hint: String::new(),
                })?;
            let page: TagList =
                serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: format!("the tag list is not JSON: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse_reference("latest").expect("tag"), None);
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_reference(&d).expect("digest").map(|d| d.to_string()),
            Some(d.clone())
        );
        let err = parse_reference("sha256:xyz").expect_err("bad digest");
        assert!(err.to_string().contains("invalid reference"), "{err}");
        let err = parse_reference("-bad").expect_err("bad tag");
        assert!(err.to_string().contains("invalid tag"), "{err}");
    }

    #[test]
    fn link_headers() {
        let cases = [
            (
                r#"</v2/a/tags/list?last=b&n=2>; rel="next""#,
                Some("/v2/a/tags/list?last=b&n=2"),
            ),
            (
                r#"<http://x/v2/a/tags/list?n=1>;rel=next"#,
                Some("http://x/v2/a/tags/list?n=1"),
            ),
            (r#"</p>; rel="prev", </n>; rel="next""#, Some("/n")),
            (r#"</p>; rel="prev""#, None),
            ("garbage", None),
        ];
        for (header, want) in cases {
            assert_eq!(next_link(header), want, "{header}");
        }
    }

    #[test]
    fn media_types() {
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(
            media_type_of(oci, Some("application/json".into())),
            manifest::OCI_INDEX
        );
        assert_eq!(
            media_type_of(b"{}", Some(manifest::DOCKER_MANIFEST.into())),
            manifest::DOCKER_MANIFEST
        );
        assert_eq!(
            media_type_of(b"not json", Some("text/plain".into())),
            "text/plain"
        );
    }
}
