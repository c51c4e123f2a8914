//! OCI 1.1 referrers on a registry (signatures, SBOMs, attestations: manifests
//! whose `subject` names another manifest), read and written in the one
//! place every tool shares.
//!
//! A registry with the referrers API (`GET /v2/<name>/referrers/<digest>`,
//! as oci-serve and zot serve it) indexes a pushed referrer itself and says
//! so with an `OCI-Subject` header. One without it (distribution 2.8 answers
//! 404) gets the distribution spec's *referrers tag schema*: an image index
//! tagged `<alg>-<hex>` (the subject's digest, hex cut to 64 characters)
//! listing each referrer with its `artifactType` and annotations, which the
//! client that pushes a referrer keeps up to date and the client that looks
//! for referrers reads when the API is missing.
//!
//! [`Repository::list_referrers`] is the lookup with that fallback;
//! [`Repository::put_manifest`] updates the tag schema by itself when the
//! registry did not index a referrer, through
//! [`Repository::add_to_referrers_tag`].

use bytes::Bytes;
use reqwest::header::{ACCEPT, LINK};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use super::auth::Access;
use super::client::Repository;
use super::manifests::{next_link, read_manifest_body};
use super::RegistryError;
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest, ManifestKind};

/// Where a list of referrers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The referrers tag schema (`sha256-<hex>` index), the registry having
    /// no referrers API.
    TagSchema,
}

/// The referrers of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// One descriptor per referrer, with `artifactType` and annotations.
    pub descriptors: Vec<Descriptor>,
    /// How they were found.
    pub source: ReferrersSource,
}

/// The referrers tag schema's tag for `subject`: `<alg>-<hex>`, the hex cut
/// to 64 characters (so a sha512 subject still makes a valid tag).
pub fn referrers_tag(subject: &Digest) -> String {
    let hex = subject.hex();
    let cut = hex.get(..64).unwrap_or(hex);
    format!("{}-{cut}", subject.algorithm())
}

/// The descriptors a referrers tag schema index lists, or why the bytes are
/// not such an index (another kind of manifest holds the tag).
pub fn parse_referrers_index(bytes: &[u8], media_type: &str) -> Result<Vec<Descriptor>, String> {
    let parsed = Manifest::parse(bytes, Some(media_type)).map_err(|e| e.to_string())?;
    match parsed.kind {
        ManifestKind::Index { manifests } if parsed.media_type == manifest::OCI_INDEX => {
            Ok(manifests)
        }
        _ => Err(format!(
            "it holds a {}, not the OCI image index of the referrers tag schema",
            parsed.media_type
        )),
    }
}

/// Adds `referrer` to a referrers tag schema index (a new one when
/// `existing` is `None`), keeping every other field and entry as it is.
/// `Ok(None)` when the index already lists that digest (the spec forbids
/// duplicates); an error when `existing` is not an OCI image index.
pub fn add_referrer(
    existing: Option<(&[u8], &str)>,
    referrer: &Descriptor,
) -> Result<Option<Vec<u8>>, String> {
    let entry = serde_json::to_value(referrer).map_err(|e| e.to_string())?;
    let mut index = match existing {
        None => {
            let mut index = Map::new();
            index.insert("schemaVersion".into(), Value::from(2));
            index.insert("mediaType".into(), Value::from(manifest::OCI_INDEX));
            index.insert("manifests".into(), Value::Array(Vec::new()));
            index
        }
        Some((bytes, media_type)) => {
            let listed = parse_referrers_index(bytes, media_type)?;
            if listed.iter().any(|d| d.digest == referrer.digest) {
                return Ok(None);
            }
            match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(index)) => index,
                _ => return Err("it is not a JSON object".into()),
            }
        }
    };
    match index.get_mut("manifests") {
        Some(Value::Array(manifests)) => manifests.push(entry),
        _ => {
            index.insert("manifests".into(), Value::Array(vec![entry]));
        }
    }
    serde_json::to_vec(&Value::Object(index))
        .map(Some)
        .map_err(|e| e.to_string())
}

impl Repository {
    /// The OCI 1.1 referrers of `digest` through the registry's referrers
    /// API (optionally only those of one artifact type), or `None` when the
    /// registry has no such API (404 on the endpoint, as distribution 2.8):
    /// [`Repository::list_referrers`] then reads the tag schema instead.
    pub async fn referrers(
        &self,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let mut url = self.url(&format!("referrers/{digest}")).await?;
        if let Some(kind) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", kind);
        }
        let mut found = Vec::new();
        let mut next: Option<Url> = Some(url);
        let mut filtered_by_registry = false;
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let resp = self
                .send(Access::Pull, &[], |http| {
                    http.get(url.clone()).header(ACCEPT, manifest::OCI_INDEX)
                })
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND if pages == 1 => return Ok(None),
                _ => {
                    return Err(self
                        .fail(
                            resp,
                            &Method::GET,
                            Access::Pull,
                            &format!("referrers of {digest}"),
                        )
                        .await)
                }
            }
            filtered_by_registry |= resp.headers().contains_key("oci-filters-applied");
            next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .and_then(|target| url.join(target).ok());
            let body = read_manifest_body(resp, &url).await?;
            let index = Manifest::parse(&body, Some(manifest::OCI_INDEX)).map_err(|e| {
                RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: format!("the referrers answer is not an image index: {e}"),
                }
            })?;
            match index.kind {
                ManifestKind::Index { manifests } => found.extend(manifests),
                ManifestKind::Image { .. } => {
                    return Err(RegistryError::InvalidResponse {
                        url: url.to_string(),
                        reason: "the referrers answer is a manifest, not an index".into(),
                    })
                }
            }
            if pages > 1000 {
                break;
            }
        }
        if let (Some(kind), false) = (artifact_type, filtered_by_registry) {
            found.retain(|d| d.artifact_type.as_deref() == Some(kind));
        }
        Ok(Some(found))
    }

    /// The referrers of `digest` (optionally only one artifact type): the
    /// referrers API where the registry has one, else the referrers tag
    /// schema (no `sha256-<hex>` tag means no referrers).
    pub async fn list_referrers(
        &self,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, RegistryError> {
        if let Some(descriptors) = self.referrers(digest, artifact_type).await? {
            return Ok(Referrers {
                descriptors,
                source: ReferrersSource::Api,
            });
        }
        let tag = referrers_tag(digest);
        let mut descriptors = match self.get_manifest(&tag).await {
            Ok(index) => parse_referrers_index(&index.bytes, &index.media_type)
                .map_err(|reason| self.bad_referrers_tag(&tag, reason))?,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        if let Some(kind) = artifact_type {
            descriptors.retain(|d| d.artifact_type.as_deref() == Some(kind));
        }
        Ok(Referrers {
            descriptors,
            source: ReferrersSource::TagSchema,
        })
    }

    /// Lists `referrer` in the referrers tag schema index of `subject`, as
    /// the distribution spec asks of a client whose registry did not index
    /// a pushed referrer: fetch the `<alg>-<hex>` index (an empty one if the
    /// tag does not exist), add the descriptor unless it is listed, push it
    /// back. Returns whether the index changed. Two clients updating the
    /// same index at once can lose an entry (the spec's own caveat;
    /// distribution 2.8 has no conditional PUT to prevent it).
    pub async fn add_to_referrers_tag(
        &self,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Result<bool, RegistryError> {
        let tag = referrers_tag(subject);
        let existing = match self.get_manifest(&tag).await {
            Ok(index) => Some(index),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let existing_parts = existing
            .as_ref()
            .map(|m| (m.bytes.as_ref(), m.media_type.as_str()));
        let updated = add_referrer(existing_parts, referrer)
            .map_err(|reason| self.bad_referrers_tag(&tag, reason))?;
        let Some(bytes) = updated else {
            return Ok(false);
        };
        self.put_manifest_only(&tag, manifest::OCI_INDEX, Bytes::from(bytes))
            .await?;
        Ok(true)
    }

    /// After a push: if the manifest is a referrer, lists it in its
    /// subject's tag schema index (the registry did not index it itself).
    pub(crate) async fn record_referrer(
        &self,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        // Not a manifest this module reads, or no subject: nothing to list.
        let Ok(parsed) = Manifest::parse(bytes, Some(media_type)) else {
            return Ok(());
        };
        let Some(subject) = &parsed.subject else {
            return Ok(());
        };
        let descriptor = parsed.referrer_descriptor(digest.clone(), bytes.len() as u64);
        self.add_to_referrers_tag(&subject.digest, &descriptor)
            .await
            .map(drop)
    }

    fn bad_referrers_tag(&self, tag: &str, reason: String) -> RegistryError {
        RegistryError::ReferrersTag {
            repository: self.display_name(),
            tag: tag.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referrer(c: char, artifact_type: &str) -> Descriptor {
        let mut d = Descriptor::new(
            manifest::OCI_MANIFEST,
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .expect("digest"),
            100,
        );
        d.artifact_type = Some(artifact_type.into());
        d.annotations = Some([("k".to_owned(), "v".to_owned())].into());
        d
    }

    #[test]
    fn tags_cut_long_digests() {
        let sha256 = Digest::sha256_of(b"x");
        assert_eq!(referrers_tag(&sha256), format!("sha256-{}", sha256.hex()));
        let sha512 = Digest::of(crate::digest::Algorithm::Sha512, b"x");
        let tag = referrers_tag(&sha512);
        assert_eq!(tag, format!("sha512-{}", &sha512.hex()[..64]));
        crate::name::validate_tag(&tag).expect("a valid tag");
    }

    #[test]
    fn adds_to_a_new_index_then_appends_once() {
        let sig = referrer('a', "application/vnd.dev.cosign.artifact.sig.v1+json");
        let first = add_referrer(None, &sig).expect("new").expect("changed");
        let listed = parse_referrers_index(&first, manifest::OCI_INDEX).expect("index");
        assert_eq!(listed, vec![sig.clone()]);
        assert_eq!(
            add_referrer(Some((&first, manifest::OCI_INDEX)), &sig).expect("same"),
            None,
            "a referrer is listed once"
        );
        let sbom = referrer('b', "application/spdx+json");
        let second = add_referrer(Some((&first, manifest::OCI_INDEX)), &sbom)
            .expect("append")
            .expect("changed");
        let listed = parse_referrers_index(&second, manifest::OCI_INDEX).expect("index");
        assert_eq!(listed, vec![sig, sbom]);
    }

    #[test]
    fn keeps_unknown_fields_of_an_existing_index() {
        let existing = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"annotations":{{"keep":"me"}}}}"#,
            manifest::OCI_INDEX
        );
        let updated = add_referrer(
            Some((existing.as_bytes(), manifest::OCI_INDEX)),
            &referrer('c', "x/y"),
        )
        .expect("append")
        .expect("changed");
        let value: Value = serde_json::from_slice(&updated).expect("json");
        assert_eq!(value["annotations"]["keep"], "me");
        assert_eq!(value["manifests"][0]["artifactType"], "x/y");
        assert_eq!(value["manifests"][0]["annotations"]["k"], "v");
    }

    #[test]
    fn refuses_a_tag_that_is_not_a_referrers_index() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
            manifest::OCI_MANIFEST,
            manifest::OCI_CONFIG,
            Digest::sha256_of(b"{}")
        );
        let docker_list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            manifest::DOCKER_MANIFEST_LIST
        );
        let cases: [(&str, &str, &str); 3] = [
            (
                &image,
                manifest::OCI_MANIFEST,
                "holds a application/vnd.oci.image.manifest.v1+json, not the OCI image index",
            ),
            (
                &docker_list,
                manifest::DOCKER_MANIFEST_LIST,
                "not the OCI image index of the referrers tag schema",
            ),
            ("not json", manifest::OCI_INDEX, "malformed manifest"),
        ];
        for (bytes, media_type, words) in cases {
            let err = add_referrer(Some((bytes.as_bytes(), media_type)), &referrer('d', "x/y"))
                .expect_err(words);
            assert!(err.contains(words), "{err}");
        }
    }
}
