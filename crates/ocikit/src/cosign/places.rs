//! Where `oci-sign` and `oci-verify` find an image: a registry repository or
//! an OCI layout, both as a [`Store`]; and the layout's own implementation.
//!
//! In a layout, cosign's `sha256-<hex>.sig` and `.att` manifests are ordinary
//! tagged entries of `index.json` (as `oci-copy` carries them), so a layout
//! signed offline keeps its signatures when copied to a registry.

use std::io::Read as _;

use super::payload::docker_reference;
use super::store::{Store, StoreError, StoredManifest};
use super::CosignError;
use crate::digest::Digest;
use crate::layout::{Layout, LayoutError, REF_NAME};
use crate::manifest::{Descriptor, Manifest};
use crate::reference::ImageReference;
use crate::registry::{Client, Repository};

fn backend(e: LayoutError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl Store for Layout {
    fn describe(&self) -> String {
        format!("oci:{}", self.path().display())
    }

    async fn manifest(&self, reference: &str) -> Result<Option<StoredManifest>, StoreError> {
        let entry: Option<Descriptor> = match reference.parse::<Digest>() {
            Ok(digest) => {
                if self.blob_size(&digest).map_err(backend)?.is_none() {
                    return Ok(None);
                }
                let listed = self.manifests().map_err(backend)?;
                Some(
                    listed
                        .into_iter()
                        .find(|d| d.digest == digest)
                        .unwrap_or_else(|| Descriptor::new("", digest, 0)),
                )
            }
            Err(_) => self
                .manifests()
                .map_err(backend)?
                .into_iter()
                .find(|d| d.annotation(REF_NAME) == Some(reference)),
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        let bytes = self.read_manifest(&entry.digest).map_err(backend)?;
        let declared = (!entry.media_type.is_empty()).then_some(entry.media_type.as_str());
        let parsed = Manifest::parse(&bytes, declared).map_err(|e| {
            StoreError::Backend(
                format!("{}: manifest {}: {e}", self.describe(), entry.digest).into(),
            )
        })?;
        Ok(Some(StoredManifest {
            bytes,
            media_type: parsed.media_type,
            digest: entry.digest,
        }))
    }

    async fn blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let size = self
            .blob_size(digest)
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("{}: blob {digest}", self.describe())))?;
        if size > max {
            return Err(CosignError::TooLarge {
                what: format!("blob {digest}"),
                size,
                limit: max,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.open_blob(digest, Some(size))
            .map_err(backend)?
            .read_to_end(&mut bytes)
            .map_err(|e| {
                StoreError::Backend(format!("{}: blob {digest}: {e}", self.describe()).into())
            })?;
        Ok(bytes)
    }

    /// A layout has no referrers API: its referrers are the manifests
    /// index.json lists whose `subject` is `digest`.
    async fn referrers(
        &self,
        digest: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<Descriptor>, StoreError> {
        Layout::referrers(self, digest, Some(artifact_type)).map_err(backend)
    }

    async fn put_blob(&self, digest: &Digest, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.write_blob(&bytes, Some(digest))
            .map(drop)
            .map_err(backend)
    }

    async fn put_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let digest = self.write_blob(&bytes, None).map_err(backend)?;
        let descriptor = Descriptor::new(media_type, digest, bytes.len() as u64);
        self.set_manifest(&descriptor, tag).map_err(backend)
    }
}

/// An image's home, opened.
pub enum Place {
    /// A registry repository.
    Registry(Repository),
    /// An OCI layout directory.
    Layout(Layout),
}

/// An opened image reference: where it lives, what to resolve there, and the
/// repository name cosign would sign it under (none for a layout).
pub struct Opened {
    /// The store.
    pub place: Place,
    /// The tag or digest to resolve.
    pub reference: String,
    /// `docker-reference` for a registry image (`index.docker.io/library/x`).
    pub identity: Option<String>,
}

/// Opens an image reference for signing or verification. `oci-archive:` is
/// refused: a tar cannot be appended to in place.
pub fn open(image: &ImageReference, client: &Client) -> Result<Opened, StoreError> {
    match image {
        ImageReference::Registry(r) => Ok(Opened {
            place: Place::Registry(client.repository(&r.registry, &r.repository)),
            reference: r.reference(),
            identity: Some(docker_reference(&r.registry, &r.repository)),
        }),
        ImageReference::Layout(l) => {
            let layout = Layout::open(&l.path).map_err(|e| match e {
                e @ LayoutError::NotALayout { .. } => StoreError::NotFound(e.to_string()),
                e => backend(e),
            })?;
            let reference = match (&l.digest, &l.tag) {
                (Some(d), _) => d.to_string(),
                (None, Some(t)) => t.clone(),
                (None, None) => {
                    let only = layout.resolve(None, None).map_err(backend)?;
                    only.digest.to_string()
                }
            };
            Ok(Opened {
                place: Place::Layout(layout),
                reference,
                identity: None,
            })
        }
        ImageReference::Archive(_) => Err(StoreError::Backend(
            format!("{image}: signatures cannot be added to or read from an oci-archive; unpack it to an oci: layout (oci-copy) first").into(),
        )),
    }
}

impl Store for Place {
    fn describe(&self) -> String {
        match self {
            Place::Registry(r) => r.describe(),
            Place::Layout(l) => l.describe(),
        }
    }

    async fn manifest(&self, reference: &str) -> Result<Option<StoredManifest>, StoreError> {
        match self {
            Place::Registry(r) => r.manifest(reference).await,
            Place::Layout(l) => l.manifest(reference).await,
        }
    }

    async fn blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        match self {
            Place::Registry(r) => Store::blob(r, digest, max).await,
            Place::Layout(l) => Store::blob(l, digest, max).await,
        }
    }

    async fn referrers(
        &self,
        digest: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<Descriptor>, StoreError> {
        match self {
            Place::Registry(r) => Store::referrers(r, digest, artifact_type).await,
            Place::Layout(l) => Store::referrers(l, digest, artifact_type).await,
        }
    }

    async fn put_blob(&self, digest: &Digest, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Place::Registry(r) => Store::put_blob(r, digest, bytes).await,
            Place::Layout(l) => Store::put_blob(l, digest, bytes).await,
        }
    }

    async fn put_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        match self {
            Place::Registry(r) => Store::put_manifest(r, tag, media_type, bytes).await,
            Place::Layout(l) => Store::put_manifest(l, tag, media_type, bytes).await,
        }
    }
}
