//! Signing and reading signatures where an image lives: the steps `oci-sign`
//! and `oci-verify` take, over a small [`Store`] trait that a registry
//! repository and an OCI layout both implement.
//!
//! Signing resolves nothing itself: the caller passes the descriptor of the
//! manifest it resolved, so the output can say exactly which digest was
//! signed. The signature is appended to the `sha256-<hex>.sig` image (blob,
//! config, then manifest: a reader never sees a manifest whose blobs are
//! missing), or, in the OCI 1.1 form, pushed as its own manifest with
//! `subject`. Reading goes through the bounds of [`signature::check_layers`]
//! before any payload is fetched, and each payload is fetched with a size
//! limit and checked against its digest.

use std::future::Future;

use super::attestation::ATTESTATION_REFERRER;
use super::attestation::{self, Envelope, Statement};
use super::payload::SimpleSigning;
use super::signature::{
    self, ReferrerKind, SignatureLayer, SIGNATURE_REFERRER, SIMPLE_SIGNING_MEDIA_TYPE,
};
use super::{CosignError, PrivateKey};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor};

/// A manifest as stored: its exact bytes, media type and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

impl StoredManifest {
    /// The descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// Why reading or writing an image's signatures failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The image (or the manifest a tag names) does not exist: cosign's exit 11.
    #[error("{0}: image not found")]
    NotFound(String),
    /// The registry or layout failed.
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A signature format problem.
    #[error(transparent)]
    Cosign(#[from] CosignError),
}

impl StoreError {
    /// cosign's exit code: 11 not found, 10/12 from signature checks, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::NotFound(_) => 11,
            StoreError::Cosign(e) => e.exit_code(),
            StoreError::Backend(_) => 1,
        }
    }
}

/// Where an image and its signatures live (one repository, or one layout).
pub trait Store: Sync {
    /// How errors name this place (`docker://host/repo`, `oci:path`).
    fn describe(&self) -> String;

    /// The manifest a tag or digest names, or `None` if there is none.
    fn manifest(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<StoredManifest>, StoreError>> + Send;

    /// A blob's bytes, refusing blobs over `max` bytes; the bytes are checked
    /// against `digest`.
    fn blob(
        &self,
        digest: &Digest,
        max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Stores a blob (a no-op if it exists).
    fn put_blob(
        &self,
        digest: &Digest,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The descriptors of the OCI 1.1 referrers of `digest` whose
    /// `artifactType` is `artifact_type` (empty when there are none).
    fn referrers(
        &self,
        digest: &Digest,
        artifact_type: &str,
    ) -> impl Future<Output = Result<Vec<Descriptor>, StoreError>> + Send;

    /// Stores a manifest under `tag`, or untagged (referrers) when `None`.
    fn put_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where `oci-sign` puts a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// cosign's `sha256-<hex>.sig` / `.att` tags (what every verifier reads).
    #[default]
    LegacyTag,
    /// An OCI 1.1 referrer manifest with `subject` (`--registry-referrers-mode oci-1-1`).
    Referrers,
}

/// What signing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signed manifest's digest.
    pub digest: Digest,
    /// The digest of the signature (or attestation) manifest written.
    pub manifest: Digest,
    /// The payload layer's digest.
    pub layer: Digest,
    /// False when an identical signature was already there.
    pub added: bool,
}

/// Resolves a tag or digest, failing with [`StoreError::NotFound`].
pub async fn resolve<S: Store>(store: &S, reference: &str) -> Result<StoredManifest, StoreError> {
    store
        .manifest(reference)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{}:{reference}", store.describe())))
}

/// The descriptors of the child manifests of an index (for `--recursive`).
pub fn children(index: &StoredManifest) -> Result<Vec<Descriptor>, CosignError> {
    let parsed = manifest::Manifest::parse(&index.bytes, Some(&index.media_type)).map_err(|e| {
        CosignError::Json {
            what: "manifest",
            reason: e.to_string(),
        }
    })?;
    Ok(match parsed.kind {
        manifest::ManifestKind::Index { manifests } => manifests,
        manifest::ManifestKind::Image { .. } => Vec::new(),
    })
}

/// Signs `subject` with `key` as cosign does and stores the signature.
pub async fn sign<S: Store>(
    store: &S,
    subject: &Descriptor,
    key: &PrivateKey,
    docker_reference: &str,
    annotations: &std::collections::BTreeMap<String, String>,
    storage: Storage,
) -> Result<Signed, StoreError> {
    let payload = SimpleSigning::new(docker_reference, &subject.digest, annotations).to_bytes();
    let layer = SignatureLayer::sign(key, payload);
    let tag = signature::signature_tag(&subject.digest);
    store_layer(store, subject, layer, &tag, SIGNATURE_REFERRER, storage).await
}

/// Attests `statement` about `subject` with `key` and stores it as cosign does.
pub async fn attest<S: Store>(
    store: &S,
    subject: &Descriptor,
    key: &PrivateKey,
    statement: &Statement,
    storage: Storage,
) -> Result<Signed, StoreError> {
    let envelope = Envelope::sign(key, &statement.to_bytes());
    let layer = envelope.to_layer(&statement.predicate_type);
    let tag = attestation::attestation_tag(&subject.digest);
    store_layer(store, subject, layer, &tag, ATTESTATION_REFERRER, storage).await
}

async fn store_layer<S: Store>(
    store: &S,
    subject: &Descriptor,
    layer: SignatureLayer,
    tag: &str,
    kind: ReferrerKind,
    storage: Storage,
) -> Result<Signed, StoreError> {
    let layer_digest = layer.descriptor.digest.clone();
    let image = match storage {
        Storage::Referrers => {
            // ECDSA signing here is deterministic (RFC 6979): signing the
            // same claim again makes the same referrer manifest.
            let image = signature::referrer_image(subject, &layer.descriptor, kind);
            if store.manifest(&image.digest().to_string()).await?.is_some() {
                return Ok(Signed {
                    digest: subject.digest.clone(),
                    manifest: image.digest(),
                    layer: layer_digest,
                    added: false,
                });
            }
            image
        }
        Storage::LegacyTag => {
            let existing = store.manifest(tag).await?;
            let bytes = existing.as_ref().map(|m| m.bytes.as_slice());
            match signature::append(bytes, &layer.descriptor)? {
                Some(image) => image,
                None => {
                    let manifest = existing.map_or_else(|| layer_digest.clone(), |m| m.digest);
                    return Ok(Signed {
                        digest: subject.digest.clone(),
                        manifest,
                        layer: layer_digest,
                        added: false,
                    });
                }
            }
        }
    };
    store.put_blob(&layer_digest, layer.payload).await?;
    store
        .put_blob(&image.config_descriptor.digest, image.config.clone())
        .await?;
    let manifest_digest = image.digest();
    let tag = (storage == Storage::LegacyTag).then_some(tag);
    store
        .put_manifest(tag, manifest::OCI_MANIFEST, image.manifest)
        .await?;
    Ok(Signed {
        digest: subject.digest.clone(),
        manifest: manifest_digest,
        layer: layer_digest,
        added: true,
    })
}

/// The signature layers (descriptor and payload) stored for `digest`, in
/// either form: the legacy `.sig` tag and OCI 1.1 referrers of cosign's
/// signature type (the registry's referrers API, or the referrers tag
/// schema where it has none). Bounded; an identical layer found in both
/// forms is kept once; none when there are no signatures.
pub async fn signature_layers<S: Store>(
    store: &S,
    digest: &Digest,
) -> Result<Vec<(Descriptor, Vec<u8>)>, StoreError> {
    layers(
        store,
        digest,
        &signature::signature_tag(digest),
        SIGNATURE_REFERRER.artifact_type,
        SIMPLE_SIGNING_MEDIA_TYPE,
        signature::MAX_SIGNATURE_PAYLOAD,
    )
    .await
}

/// The attestation layers stored for `digest` (the `.att` tag and in-toto
/// referrers), bounded; none when there are no attestations.
pub async fn attestation_layers<S: Store>(
    store: &S,
    digest: &Digest,
) -> Result<Vec<(Descriptor, Vec<u8>)>, StoreError> {
    layers(
        store,
        digest,
        &attestation::attestation_tag(digest),
        ATTESTATION_REFERRER.artifact_type,
        attestation::DSSE_MEDIA_TYPE,
        attestation::MAX_ATTESTATION_PAYLOAD,
    )
    .await
}

/// The most referrer manifests of one artifact type read for one image.
pub const MAX_REFERRERS: usize = 100;

async fn layers<S: Store>(
    store: &S,
    digest: &Digest,
    tag: &str,
    artifact_type: &str,
    media_type: &str,
    max: u64,
) -> Result<Vec<(Descriptor, Vec<u8>)>, StoreError> {
    let (tagged, referrers) =
        futures_util::future::join(store.manifest(tag), store.referrers(digest, artifact_type))
            .await;
    let mut manifests: Vec<StoredManifest> = tagged?.into_iter().collect();
    let referrers = referrers?;
    if referrers.len() > MAX_REFERRERS {
        return Err(CosignError::TooLarge {
            what: format!("the list of {artifact_type} referrers of {digest}"),
            size: referrers.len() as u64,
            limit: MAX_REFERRERS as u64,
        }
        .into());
    }
    for referrer in referrers {
        // A tag schema index may name manifests deleted since: skip those.
        if let Some(manifest) = store.manifest(&referrer.digest.to_string()).await? {
            manifests.push(manifest);
        }
    }
    let mut descriptors: Vec<Descriptor> = Vec::new();
    for manifest in &manifests {
        for layer in signature::check_layers(&manifest.bytes, media_type, max)? {
            let seen = descriptors
                .iter()
                .any(|d| d.digest == layer.digest && d.annotations == layer.annotations);
            if !seen {
                descriptors.push(layer);
            }
        }
        if descriptors.len() > signature::MAX_LAYERS {
            return Err(CosignError::TooLarge {
                what: format!("the signatures of {digest}"),
                size: descriptors.len() as u64,
                limit: signature::MAX_LAYERS as u64,
            }
            .into());
        }
    }
    let mut out = Vec::with_capacity(descriptors.len());
    for descriptor in descriptors {
        let bytes = store
            .blob(&descriptor.digest, descriptor.size.min(max))
            .await?;
        out.push((descriptor, bytes));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-memory [`Store`] for unit tests.
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct MemoryStore {
        pub blobs: Mutex<HashMap<Digest, Vec<u8>>>,
        pub manifests: Mutex<HashMap<String, StoredManifest>>,
    }

    impl MemoryStore {
        pub fn add_image(&self, tag: &str, bytes: &[u8]) -> StoredManifest {
            let stored = StoredManifest {
                bytes: bytes.to_vec(),
                media_type: manifest::OCI_MANIFEST.into(),
                digest: Digest::sha256_of(bytes),
            };
            let mut m = self.manifests.lock().unwrap();
            m.insert(tag.into(), stored.clone());
            m.insert(stored.digest.to_string(), stored.clone());
            stored
        }
    }

    impl Store for MemoryStore {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn manifest(&self, reference: &str) -> Result<Option<StoredManifest>, StoreError> {
            Ok(self.manifests.lock().unwrap().get(reference).cloned())
        }
        async fn referrers(
            &self,
            digest: &Digest,
            artifact_type: &str,
        ) -> Result<Vec<Descriptor>, StoreError> {
            let manifests = self.manifests.lock().unwrap();
            let mut found: Vec<Descriptor> = Vec::new();
            for stored in manifests.values() {
                let Ok(parsed) = manifest::Manifest::parse(&stored.bytes, None) else {
                    continue;
                };
                let refers = parsed.subject.as_ref().is_some_and(|s| s.digest == *digest);
                if refers
                    && parsed.artifact_type.as_deref() == Some(artifact_type)
                    && !found.iter().any(|d| d.digest == stored.digest)
                {
                    found.push(stored.descriptor());
                }
            }
            Ok(found)
        }
        async fn blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
            let blob = self.blobs.lock().unwrap().get(digest).cloned();
            let blob = blob.ok_or_else(|| StoreError::NotFound(digest.to_string()))?;
            if blob.len() as u64 > max {
                return Err(StoreError::Backend("too big".into()));
            }
            Ok(blob)
        }
        async fn put_blob(&self, digest: &Digest, bytes: Vec<u8>) -> Result<(), StoreError> {
            self.blobs.lock().unwrap().insert(digest.clone(), bytes);
            Ok(())
        }
        async fn put_manifest(
            &self,
            tag: Option<&str>,
            media_type: &str,
            bytes: Vec<u8>,
        ) -> Result<(), StoreError> {
            let stored = StoredManifest {
                digest: Digest::sha256_of(&bytes),
                bytes,
                media_type: media_type.into(),
            };
            let mut m = self.manifests.lock().unwrap();
            if let Some(tag) = tag {
                m.insert(tag.into(), stored.clone());
            }
            m.insert(stored.digest.to_string(), stored);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::memory::MemoryStore;
    use super::*;
    use crate::cosign::attestation::PredicateType;
    use crate::cosign::signature::VerifyOptions;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn sign_appends_once_and_verifies() {
        block_on(async {
            let store = MemoryStore::default();
            let image = store.add_image("1.0", b"{\"schemaVersion\":2}");
            let key = PrivateKey::generate();
            let none = BTreeMap::new();
            let first = sign(
                &store,
                &image.descriptor(),
                &key,
                "r/app",
                &none,
                Storage::LegacyTag,
            )
            .await
            .unwrap();
            assert!(first.added);
            let again = sign(
                &store,
                &image.descriptor(),
                &key,
                "r/app",
                &none,
                Storage::LegacyTag,
            )
            .await
            .unwrap();
            assert!(!again.added, "an identical signature is not appended twice");
            let other = PrivateKey::generate();
            sign(
                &store,
                &image.descriptor(),
                &other,
                "r/app",
                &none,
                Storage::LegacyTag,
            )
            .await
            .unwrap();
            let layers = signature_layers(&store, &image.digest).await.unwrap();
            assert_eq!(layers.len(), 2);
            let ok = signature::verify_all(
                "img",
                &key.public_key(),
                &layers,
                &image.digest,
                &VerifyOptions::default(),
            )
            .unwrap();
            assert_eq!(ok.len(), 1);
            assert!(signature_layers(&store, &Digest::sha256_of(b"unsigned"))
                .await
                .unwrap()
                .is_empty());
        })
    }

    #[test]
    fn attests_and_reads_back() {
        block_on(async {
            let store = MemoryStore::default();
            let image = store.add_image("1.0", b"{}");
            let key = PrivateKey::generate();
            let statement =
                Statement::new(&PredicateType::Custom, b"data", "r/app", &image.digest, "t")
                    .unwrap();
            attest(
                &store,
                &image.descriptor(),
                &key,
                &statement,
                Storage::LegacyTag,
            )
            .await
            .unwrap();
            let layers = attestation_layers(&store, &image.digest).await.unwrap();
            let ok =
                attestation::verify_all("img", &key.public_key(), &layers, &image.digest, None)
                    .unwrap();
            assert_eq!(ok[0].statement, statement);
        })
    }

    #[test]
    fn referrers_form_is_untagged_with_subject() {
        block_on(async {
            let store = MemoryStore::default();
            let image = store.add_image("1.0", b"{}");
            let key = PrivateKey::generate();
            let signed = sign(
                &store,
                &image.descriptor(),
                &key,
                "r/app",
                &BTreeMap::new(),
                Storage::Referrers,
            )
            .await
            .unwrap();
            assert!(store
                .manifests
                .lock()
                .unwrap()
                .get(&signature::signature_tag(&image.digest))
                .is_none());
            let stored = resolve(&store, &signed.manifest.to_string()).await.unwrap();
            let parsed = manifest::Manifest::parse(&stored.bytes, None).unwrap();
            assert_eq!(parsed.subject.unwrap().digest, image.digest);
            let err = resolve(&store, "missing").await.unwrap_err();
            assert_eq!(err.exit_code(), 11);
            assert_eq!(err.to_string(), "memory:missing: image not found");
        })
    }
}
