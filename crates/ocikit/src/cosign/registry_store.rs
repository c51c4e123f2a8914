//! The [`Store`] of a registry repository, through `ocikit::registry`.

use tokio::io::AsyncReadExt as _;

use super::store::{Store, StoreError, StoredManifest};
use super::CosignError;
use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::registry::{RegistryError, Repository};

fn backend(e: RegistryError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl Store for Repository {
    fn describe(&self) -> String {
        format!("docker://{}/{}", self.registry(), self.name())
    }

    async fn manifest(&self, reference: &str) -> Result<Option<StoredManifest>, StoreError> {
        match self.get_manifest(reference).await {
            Ok(m) => Ok(Some(StoredManifest {
                bytes: m.bytes.to_vec(),
                media_type: m.media_type,
                digest: m.digest,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let (size, reader) = self.get_blob(digest).await.map_err(backend)?;
        if size > max {
            return Err(CosignError::TooLarge {
                what: format!("blob {digest}"),
                size,
                limit: max,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(max + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| {
                StoreError::Backend(format!("{}: blob {digest}: {e}", self.describe()).into())
            })?;
        if bytes.len() as u64 > max {
            return Err(CosignError::TooLarge {
                what: format!("blob {digest}"),
                size: bytes.len() as u64,
                limit: max,
            }
            .into());
        }
        digest
            .verify(&bytes)
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(bytes)
    }

    /// Through the referrers API, or the referrers tag schema where the
    /// registry has none (distribution 2.8).
    async fn referrers(
        &self,
        digest: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<Descriptor>, StoreError> {
        self.list_referrers(digest, Some(artifact_type))
            .await
            .map(|found| found.descriptors)
            .map_err(backend)
    }

    async fn put_blob(&self, digest: &Digest, bytes: Vec<u8>) -> Result<(), StoreError> {
        if self.blob_exists(digest).await.map_err(backend)?.is_some() {
            return Ok(());
        }
        let size = bytes.len() as u64;
        Repository::put_blob(self, digest, size, Box::pin(std::io::Cursor::new(bytes)))
            .await
            .map_err(backend)
    }

    async fn put_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let reference = match tag {
            Some(tag) => tag.to_owned(),
            None => Digest::sha256_of(&bytes).to_string(),
        };
        Repository::put_manifest(self, &reference, media_type, bytes.into())
            .await
            .map(drop)
            .map_err(backend)
    }
}
