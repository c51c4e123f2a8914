//! What `oci-inspect` shows about an image: the summary skopeo inspect 1.9
//! prints, field for field (name, digest, tags, created, architecture, layers, env), the raw
//! manifest, the config, and a repository's tags, from any transport.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::copy::{self, CopyError, Source};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, ManifestKind};
use crate::reference::ImageReference;
use crate::registry::ClientOptions;

/// Why an image could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Reading the image failed.
    #[error(transparent)]
    Read(#[from] CopyError),
    /// A manifest could not be parsed.
    #[error("{image}: manifest {digest}: {source}")]
    Manifest {
        /// The image.
        image: String,
        /// The manifest.
        digest: Digest,
        /// Why.
        #[source]
        source: crate::manifest::ManifestError,
    },
    /// The config is not a JSON object.
    #[error("{image}: config {digest} is not valid JSON: {reason}")]
    Config {
        /// The image.
        image: String,
        /// The config blob.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// An index has no image for this machine.
    #[error("{image}: index {digest} has no image for {platform}; inspect one of its manifests by digest (oci-inspect --raw shows them)")]
    NoPlatform {
        /// The image.
        image: String,
        /// The index.
        digest: Digest,
        /// This machine's platform.
        platform: String,
    },
}

/// skopeo inspect's summary, field for field and in its order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    /// `HOST/REPO` for a registry image (absent for layouts, as in skopeo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The digest of the manifest or index the reference names.
    pub digest: Digest,
    /// The repository's tags (empty for layouts).
    pub repo_tags: Vec<String>,
    /// The config's `created`.
    pub created: Option<String>,
    /// The config's `docker_version`, or empty.
    pub docker_version: String,
    /// The config's labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// The config's architecture.
    pub architecture: String,
    /// The config's OS.
    pub os: String,
    /// The layer digests.
    pub layers: Vec<Digest>,
    /// The config's environment.
    pub env: Option<Vec<String>>,
}

/// An image opened for inspection.
pub struct Inspector {
    reference: ImageReference,
    source: Source,
}

impl Inspector {
    /// Opens the image's source (extracting an archive).
    pub async fn open(
        reference: &ImageReference,
        registry: &ClientOptions,
    ) -> Result<Inspector, InspectError> {
        Ok(Inspector {
            reference: reference.clone(),
            source: Source::open(reference, registry).await?,
        })
    }

    /// The root descriptor and its exact bytes.
    pub async fn raw(&self) -> Result<(Descriptor, Vec<u8>), InspectError> {
        let root = self.source.resolve(&self.reference).await?;
        let bytes = self.source.manifest(&root).await?;
        Ok((root, bytes))
    }

    /// The image manifest for this machine: the root, or its entry for this
    /// platform when the root is an index.
    pub async fn image(
        &self,
        root: &Descriptor,
        bytes: Vec<u8>,
    ) -> Result<(Descriptor, Manifest), InspectError> {
        let parsed = self.parse(root, &bytes)?;
        let ManifestKind::Index { manifests } = &parsed.kind else {
            return Ok((root.clone(), parsed));
        };
        let Some(chosen) = copy::pick_platform(manifests) else {
            let (os, arch) = copy::host_platform();
            return Err(InspectError::NoPlatform {
                image: self.reference.to_string(),
                digest: root.digest.clone(),
                platform: format!("{os}/{arch}"),
            });
        };
        let child = self.source.manifest(chosen).await?;
        let parsed = self.parse(chosen, &child)?;
        Ok((chosen.clone(), parsed))
    }

    /// The config blob's exact bytes.
    pub async fn config(&self, image: &Manifest) -> Result<Vec<u8>, InspectError> {
        let ManifestKind::Image { config, .. } = &image.kind else {
            return Ok(Vec::new());
        };
        Ok(self.source.small_blob(config).await?)
    }

    /// The repository's tags (a layout's ref names).
    pub async fn tags(&self) -> Result<Vec<String>, InspectError> {
        Ok(self.source.tags().await?)
    }

    /// skopeo inspect's summary; `with_tags` fills `RepoTags` for registries.
    pub async fn summary(&self, with_tags: bool) -> Result<Summary, InspectError> {
        let (root, bytes) = self.raw().await?;
        let (_, image) = self.image(&root, bytes).await?;
        let config_bytes = self.config(&image).await?;
        let config: Value =
            serde_json::from_slice(&config_bytes).map_err(|e| InspectError::Config {
                image: self.reference.to_string(),
                digest: root.digest.clone(),
                reason: e.to_string(),
            })?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let inner = config.get("config").cloned().unwrap_or(Value::Null);
        let layers = match &image.kind {
            ManifestKind::Image { layers, .. } => layers.clone(),
            ManifestKind::Index { .. } => Vec::new(),
        };
        let (name, repo_tags) = match &self.reference {
            ImageReference::Registry(r) => {
                let tags = if with_tags {
                    self.tags().await?
                } else {
                    Vec::new()
                };
                (Some(r.name()), tags)
            }
            _ => (None, Vec::new()),
        };
        Ok(Summary {
            name,
            digest: root.digest,
            repo_tags,
            created: text(&config, "created"),
            docker_version: text(&config, "docker_version").unwrap_or_default(),
            labels: inner
                .get("Labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok()),
            architecture: text(&config, "architecture").unwrap_or_default(),
            os: text(&config, "os").unwrap_or_default(),
            layers: layers.iter().map(|l| l.digest.clone()).collect(),
            env: inner
                .get("Env")
                .and_then(|e| serde_json::from_value(e.clone()).ok()),
        })
    }

    fn parse(&self, desc: &Descriptor, bytes: &[u8]) -> Result<Manifest, InspectError> {
        Manifest::parse(bytes, Some(&desc.media_type)).map_err(|source| InspectError::Manifest {
            image: self.reference.to_string(),
            digest: desc.digest.clone(),
            source,
        })
    }
}
