//! The registry client against the reference registry (docker-registry,
//! distribution 2.8) started by the e2e harness: round trips keep digests,
//! every auth flavour, TLS trust, and refusal of corrupt content.

use bytes::Bytes;
use ocikit::digest::Digest;
use ocikit::manifest;
use ocikit::registry::{BlobReader, Client, ClientOptions, Repository};
use ocikit_e2e::peers::DockerRegistry;
use tokio::io::AsyncReadExt as _;

fn client(opts: ClientOptions) -> Client {
    Client::new(opts).expect("client")
}

/// Deterministic pseudo-random bytes (incompressible enough, reproducible).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn reader(bytes: Vec<u8>) -> BlobReader {
    Box::pin(std::io::Cursor::new(bytes))
}

async fn read_all(mut r: BlobReader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

/// Pushes a config and a layer and a manifest referencing them; returns the
/// manifest's bytes and digest.
async fn push_image(repo: &Repository, tag: &str, layer: &[u8]) -> (Bytes, Digest) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = Digest::sha256_of(config);
    let layer_digest = Digest::sha256_of(layer);
    repo.put_blob(&config_digest, config.len() as u64, reader(config.to_vec()))
        .await
        .expect("put config");
    repo.put_blob(&layer_digest, layer.len() as u64, reader(layer.to_vec()))
        .await
        .expect("put layer");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        manifest::OCI_MANIFEST,
        manifest::OCI_CONFIG,
        config_digest,
        config.len(),
        manifest::OCI_LAYER_GZIP,
        layer_digest,
        layer.len()
    );
    let bytes = Bytes::from(manifest);
    let digest = repo
        .put_manifest(tag, manifest::OCI_MANIFEST, bytes.clone())
        .await
        .expect("put manifest");
    (bytes, digest)
}

#[tokio::test]
async fn anonymous_round_trip_keeps_digests() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let client = client(ClientOptions::default());
    let repo = client.repository(&registry.addr, "team/app");
    repo.ping().await.expect("ping");

    let layer = data(100_000, 1);
    let (bytes, digest) = push_image(&repo, "1.0", &layer).await;
    assert_eq!(digest, Digest::sha256_of(&bytes));

    // By tag and by digest, the exact bytes come back.
    for reference in ["1.0".to_owned(), digest.to_string()] {
        let fetched = repo.get_manifest(&reference).await.expect("get manifest");
        assert_eq!(fetched.bytes, bytes);
        assert_eq!(fetched.digest, digest);
        assert_eq!(fetched.media_type, manifest::OCI_MANIFEST);
        let head = repo
            .head_manifest(&reference)
            .await
            .expect("head")
            .expect("exists");
        assert_eq!(head.digest, digest);
        assert_eq!(head.size, bytes.len() as u64);
    }
    assert!(repo.head_manifest("absent").await.expect("head").is_none());
    let err = repo.get_manifest("absent").await.expect_err("absent tag");
    assert!(err.is_not_found(), "{err}");

    // Blobs: exists, streamed back verified.
    let layer_digest = Digest::sha256_of(&layer);
    assert_eq!(
        repo.blob_exists(&layer_digest).await.expect("head blob"),
        Some(layer.len() as u64)
    );
    let (size, body) = repo.get_blob(&layer_digest).await.expect("get blob");
    assert_eq!(size, layer.len() as u64);
    assert_eq!(read_all(body).await.expect("verified read"), layer);
    let missing = Digest::sha256_of(b"missing");
    assert_eq!(repo.blob_exists(&missing).await.expect("head"), None);
    assert!(repo
        .get_blob(&missing)
        .await
        .err()
        .expect("missing")
        .is_not_found());

    // Tags, and distribution 2.8 has no referrers API.
    repo.put_manifest("2.0", manifest::OCI_MANIFEST, bytes.clone())
        .await
        .expect("second tag");
    let mut tags = repo.tags().await.expect("tags");
    tags.sort();
    assert_eq!(tags, vec!["1.0", "2.0"]);
    assert_eq!(
        repo.referrers(&digest, None).await.expect("referrers"),
        None
    );

    // Cross-repository mount within the registry.
    let other = client.repository(&registry.addr, "team/other");
    assert!(other
        .mount_blob(&layer_digest, "team/app")
        .await
        .expect("mount"));
    assert_eq!(
        other.blob_exists(&layer_digest).await.expect("head"),
        Some(layer.len() as u64)
    );
    assert!(!other
        .mount_blob(&missing, "team/app")
        .await
        .expect("no mount"));

    // Delete by digest.
    repo.delete_manifest(&digest).await.expect("delete");
    assert!(repo
        .get_manifest(&digest.to_string())
        .await
        .expect_err("gone")
        .is_not_found());
}

/// Where distribution keeps a blob's bytes.
fn stored_blob(registry: &DockerRegistry, digest: &Digest) -> std::path::PathBuf {
    registry
        .dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex())
        .join("data")
}

#[tokio::test]
async fn corrupt_content_is_rejected() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let client = client(ClientOptions::default());
    let repo = client.repository(&registry.addr, "app");
    let layer = data(50_000, 2);
    let (bytes, digest) = push_image(&repo, "v1", &layer).await;

    // Tamper with the stored manifest: same length, different bytes.
    let path = stored_blob(&registry, &digest);
    let tampered = String::from_utf8(bytes.to_vec())
        .expect("utf8")
        .replace("tar+gzip", "tar+gzIp");
    assert_eq!(tampered.len(), bytes.len());
    std::fs::write(&path, &tampered).expect("tamper manifest");
    let err = repo
        .get_manifest(&digest.to_string())
        .await
        .expect_err("tampered manifest");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
    // By tag too: the registry announces the digest, the bytes disagree.
    let err = repo.get_manifest("v1").await.expect_err("tampered by tag");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );

    // Tamper with a layer: the stream fails at its end.
    let layer_digest = Digest::sha256_of(&layer);
    let mut bad = layer.clone();
    bad[10] ^= 0xff;
    std::fs::write(stored_blob(&registry, &layer_digest), &bad).expect("tamper layer");
    let (_, body) = repo.get_blob(&layer_digest).await.expect("get blob");
    let err = read_all(body).await.expect_err("tampered layer");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
}

#[tokio::test]
async fn uploads_refuse_data_that_is_not_what_was_promised() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let client = client(ClientOptions::default());
    let repo = client.repository(&registry.addr, "app");
    // Small: checked before sending.
    let claimed = Digest::sha256_of(b"one thing");
    let err = repo
        .put_blob(&claimed, 9, reader(b"another t".to_vec()))
        .await
        .expect_err("wrong digest");
    assert!(err.to_string().contains("hashes to"), "{err}");
    // Large: the stream is cut before the registry commits it.
    let big = data(9 << 20, 3);
    let err = repo
        .put_blob(&claimed, big.len() as u64, reader(big))
        .await
        .expect_err("wrong digest, streamed");
    assert!(!err.to_string().is_empty());
    assert_eq!(repo.blob_exists(&claimed).await.expect("head"), None);
}
