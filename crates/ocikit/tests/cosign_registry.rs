//! cosign signatures in a real registry (docker-registry): the `.sig` tag is
//! appended to without duplicates and read back within bounds.

use std::collections::BTreeMap;

use ocikit::cosign::signature::{self, VerifyOptions};
use ocikit::cosign::store::{self, Storage, Store as _};
use ocikit::cosign::PrivateKey;
use ocikit::digest::Digest;
use ocikit::manifest::{self, Descriptor};
use ocikit::registry::{Client, ClientOptions, Repository};
use ocikit_e2e::peers::DockerRegistry;

async fn push_artifact(repo: &Repository, tag: &str) -> Descriptor {
    let config = b"{}".to_vec();
    let config_digest = Digest::sha256_of(&config);
    repo.put_blob(&config_digest, 2, Box::pin(std::io::Cursor::new(config)))
        .await
        .unwrap();
    let bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":2}},"layers":[]}}"#,
        manifest::OCI_MANIFEST,
        manifest::OCI_CONFIG
    );
    let digest = repo
        .put_manifest(tag, manifest::OCI_MANIFEST, bytes.clone().into())
        .await
        .unwrap();
    Descriptor::new(manifest::OCI_MANIFEST, digest, bytes.len() as u64)
}

#[tokio::test]
async fn signatures_round_trip_through_a_registry() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let client = Client::new(ClientOptions::default()).unwrap();
    let repo = client.repository(&registry.addr, "team/app");
    let subject = push_artifact(&repo, "1.0").await;
    let resolved = store::resolve(&repo, "1.0").await.unwrap();
    assert_eq!(resolved.digest, subject.digest);

    let key = PrivateKey::generate();
    let identity = format!("{}/team/app", registry.addr);
    let none = BTreeMap::new();
    let first = store::sign(&repo, &subject, &key, &identity, &none, Storage::LegacyTag)
        .await
        .unwrap();
    assert!(first.added);
    let again = store::sign(&repo, &subject, &key, &identity, &none, Storage::LegacyTag)
        .await
        .unwrap();
    assert!(!again.added);
    let other = PrivateKey::generate();
    store::sign(
        &repo,
        &subject,
        &other,
        &identity,
        &none,
        Storage::LegacyTag,
    )
    .await
    .unwrap();

    let layers = store::signature_layers(&repo, &subject.digest)
        .await
        .unwrap();
    assert_eq!(layers.len(), 2, "two keys, two signatures, no duplicate");
    let options = VerifyOptions {
        identity: Some(identity.clone()),
        ..Default::default()
    };
    let verified =
        signature::verify_all("img", &key.public_key(), &layers, &subject.digest, &options)
            .unwrap();
    assert_eq!(verified.len(), 1);

    let missing = store::resolve(&repo, "2.0").await.unwrap_err();
    assert_eq!(missing.exit_code(), 11);
    assert!(repo.describe().starts_with("docker://127.0.0.1:"));
}
