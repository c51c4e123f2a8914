//! Manifests and indexes, OCI and Docker alike: media types, descriptors and a
//! lenient, read-only view of a manifest's references.
//!
//! Manifests are stored, hashed and copied as the exact bytes received; this
//! module only *reads* them to find what they point at (config, layers,
//! platform manifests, subject). It deliberately does not use `oci-spec`'s
//! strict types: a registry must accept any spec-valid shape, including
//! Docker v2s2 and fields a future spec adds, and must never re-serialise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty descriptor (artifacts with no config).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker schema 2 manifest (v2s2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The largest manifest ocikit reads or a registry accepts (the spec's
/// recommended limit), so a hostile server cannot make us buffer gigabytes.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// Every manifest media type ocikit reads, as an HTTP `Accept` header. Without
/// the Docker types distribution 2.8 answers 404 or rewrites v2s2 to schema 1.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Whether `media_type` is a manifest list or index (its children are manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` is one of the manifest types this module reads.
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}

/// A content descriptor. Unknown fields are kept in `extra` so a descriptor
/// written back (into index.json, a referrers index) loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// OCI 1.1 artifact type, on manifests of artifacts and in referrers lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations; `org.opencontainers.image.ref.name` is a layout's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform of a manifest inside an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Anything else, kept verbatim (`urls`, `data`, future fields).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor with just the three required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: None,
            platform: None,
            extra: BTreeMap::new(),
        }
    }

    /// One annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// A platform, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, GOARCH style (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system, GOOS style (`linux`).
    pub os: String,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Anything else (`os.version`, `os.features`), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Why manifest bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or a field has the wrong type.
    #[error("malformed manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// Over [`MAX_MANIFEST_SIZE`].
    #[error("manifest of {0} bytes is over the 4 MiB limit")]
    TooLarge(usize),
    /// Neither an image manifest nor an index.
    #[error("manifest has neither `config`/`layers` nor `manifests`, and media type {0:?}")]
    UnknownShape(String),
    /// The declared media type disagrees with the body's own `mediaType`.
    #[error("manifest media type {declared:?} does not match its body's {body:?}")]
    MediaTypeMismatch {
        /// From the Content-Type header or the referring descriptor.
        declared: String,
        /// From the JSON.
        body: String,
    },
}

/// What a manifest or index refers to: the parts every tool needs to walk,
/// copy, garbage-collect or serve an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The media type: the body's `mediaType`, else the declared one, else inferred.
    pub media_type: String,
    /// `artifactType`, if the manifest declares one.
    pub artifact_type: Option<String>,
    /// Image or index, with their references.
    pub kind: ManifestKind,
    /// OCI 1.1 `subject` (what this manifest refers to, for referrers).
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The two shapes of manifest.
// A manifest is parsed one at a time and never stored in bulk, so the size
// difference between the variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image (or artifact) manifest.
    Image {
        /// The config blob.
        config: Descriptor,
        /// The layer blobs, in order.
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list.
    Index {
        /// The child manifests.
        manifests: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    /// Reads manifest bytes. `declared` is the media type the bytes came with
    /// (Content-Type, or the referring descriptor), if any.
    pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let raw: RawManifest = serde_json::from_slice(bytes)?;
        if let (Some(declared), Some(body)) = (declared, raw.media_type.as_deref()) {
            if declared != body && is_manifest_type(declared) {
                return Err(ManifestError::MediaTypeMismatch {
                    declared: declared.to_owned(),
                    body: body.to_owned(),
                });
            }
        }
        let stated = raw
            .media_type
            .clone()
            .or_else(|| declared.map(str::to_owned));
        let kind = match (raw.config, raw.manifests) {
            (Some(config), None) => ManifestKind::Image {
                config,
                layers: raw.layers.unwrap_or_default(),
            },
            (None, Some(manifests)) => ManifestKind::Index { manifests },
            _ => return Err(ManifestError::UnknownShape(stated.unwrap_or_default())),
        };
        let media_type = stated.unwrap_or_else(|| match kind {
            ManifestKind::Image { .. } => OCI_MANIFEST.to_owned(),
            ManifestKind::Index { .. } => OCI_INDEX.to_owned(),
        });
        Ok(Manifest {
            media_type,
            artifact_type: raw.artifact_type,
            kind,
            subject: raw.subject,
            annotations: raw.annotations.unwrap_or_default(),
        })
    }

    /// Every blob or manifest this one refers to directly (config and layers,
    /// or child manifests), not counting the subject.
    pub fn references(&self) -> Vec<&Descriptor> {
        match &self.kind {
            ManifestKind::Image { config, layers } => {
                std::iter::once(config).chain(layers).collect()
            }
            ManifestKind::Index { manifests } => manifests.iter().collect(),
        }
    }

    /// Whether this is an index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.kind, ManifestKind::Index { .. })
    }

    /// The entry that lists this manifest (stored as `digest`, `size` bytes)
    /// among the referrers of its subject, as the distribution spec fixes it
    /// for both the referrers API and the referrers tag schema: its
    /// `artifactType` (for an image manifest without one, the config's media
    /// type) and all of its annotations.
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        let artifact_type = self.artifact_type.clone().or_else(|| match &self.kind {
            ManifestKind::Image { config, .. } => Some(config.media_type.clone()),
            ManifestKind::Index { .. } => None,
        });
        let mut descriptor = Descriptor::new(self.media_type.clone(), digest, size);
        descriptor.artifact_type = artifact_type;
        descriptor.annotations = (!self.annotations.is_empty()).then(|| self.annotations.clone());
        descriptor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn reads_oci_image_with_subject_and_keeps_unknown_fields() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"x/y",
            "config":{{"mediaType":"{OCI_EMPTY}","digest":"{}","size":2,"data":"e30="}},
            "layers":[{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{}","size":9,"urls":["u"]}}],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}},
            "annotations":{{"a":"b"}}}}"#,
            digest('a'),
            digest('b'),
            digest('c')
        );
        let m = Manifest::parse(json.as_bytes(), None).expect("parse");
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.artifact_type.as_deref(), Some("x/y"));
        assert_eq!(m.references().len(), 2);
        assert_eq!(m.subject.as_ref().map(|s| s.size), Some(5));
        let ManifestKind::Image { config, layers } = &m.kind else {
            panic!("image")
        };
        assert!(config.extra.contains_key("data"));
        let back = serde_json::to_value(&layers[0]).expect("ser");
        assert_eq!(back["urls"][0], "u");
    }

    #[test]
    fn infers_shape_without_media_type() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
            digest('d')
        );
        let m = Manifest::parse(json.as_bytes(), None).expect("parse");
        assert_eq!(m.media_type, OCI_INDEX);
        assert!(m.is_index());
        let m = Manifest::parse(json.as_bytes(), Some(DOCKER_MANIFEST_LIST)).expect("parse");
        assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
    }

    #[test]
    fn rejects_bad_input() {
        let cases: [(&[u8], &str); 4] = [
            (b"not json", "malformed manifest"),
            (br#"{"schemaVersion":2}"#, "neither"),
            (
                br#"{"config":{"mediaType":"x","digest":"sha256:zz","size":1}}"#,
                "malformed",
            ),
            (
                br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                "does not match",
            ),
        ];
        for (bytes, words) in cases {
            let err = Manifest::parse(bytes, Some(OCI_MANIFEST))
                .expect_err(words)
                .to_string();
            assert!(err.contains(words), "{err}");
        }
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(matches!(
            Manifest::parse(&big, None),
            Err(ManifestError::TooLarge(_))
        ));
    }

    #[test]
    fn referrer_descriptors_follow_the_spec() {
        let with_type = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/spdx+json",
            "config":{{"mediaType":"{OCI_EMPTY}","digest":"{}","size":2}},"layers":[],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}},
            "annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
            digest('a'),
            digest('c')
        );
        let without_type = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.dev.cosign.artifact.sig.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
            digest('a')
        );
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        let cases = [
            (with_type.as_str(), Some("application/spdx+json"), true),
            (
                without_type.as_str(),
                Some("application/vnd.dev.cosign.artifact.sig.v1+json"),
                false,
            ),
            (index.as_str(), None, false),
        ];
        for (json, artifact_type, annotated) in cases {
            let m = Manifest::parse(json.as_bytes(), None).expect("parse");
            let d = m.referrer_descriptor(Digest::sha256_of(json.as_bytes()), json.len() as u64);
            assert_eq!(d.media_type, m.media_type);
            assert_eq!(d.size, json.len() as u64);
            assert_eq!(d.artifact_type.as_deref(), artifact_type, "{json}");
            assert_eq!(
                d.annotation("org.opencontainers.image.created").is_some(),
                annotated
            );
        }
    }
}
