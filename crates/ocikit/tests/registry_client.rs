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

// ---- authentication ----

use ocikit::registry::{Credentials, Environment};
use ocikit_e2e::peers::RegistryConfig;
use std::path::Path;

/// An environment with an empty home and `bin` as the only PATH entry, so
/// the developer's own auth files never leak into a test.
fn isolated_env(dir: &Path) -> Environment {
    std::fs::create_dir_all(dir.join("home")).expect("home");
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    Environment {
        home: Some(dir.join("home")),
        path: Some(dir.join("bin").into_os_string()),
        ..Environment::default()
    }
}

fn auth_json(user: &str, password: &str, registry: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#)
}

async fn small_push(repo: &Repository) -> Result<Digest, ocikit::registry::RegistryError> {
    let blob = b"auth test blob".to_vec();
    let digest = Digest::sha256_of(&blob);
    repo.put_blob(&digest, blob.len() as u64, reader(blob))
        .await?;
    Ok(digest)
}

fn creds(user: &str, password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: user.into(),
        password: password.into(),
    })
}

#[tokio::test]
async fn htpasswd_basic_auth_from_every_source() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(yaml) = ocikit_e2e::basic_auth::registry_yaml(tmp.path(), &[("alice", "wonder")])
    else {
        return;
    };
    let Some(registry) = DockerRegistry::start_with(RegistryConfig {
        extra_yaml: yaml,
        ..RegistryConfig::default()
    }) else {
        return;
    };
    let env = isolated_env(tmp.path());
    let options = |creds: Option<Credentials>| ClientOptions {
        creds,
        creds_flag: "--dest-creds",
        environment: env.clone(),
        ..ClientOptions::default()
    };

    // Anonymous: a 401 naming the registry, that nothing was found, and the flag.
    let repo = client(options(None)).repository(&registry.addr, "app");
    let err = small_push(&repo).await.expect_err("anonymous push");
    let text = err.to_string();
    assert!(err.is_auth(), "{text}");
    assert!(text.contains(&registry.addr), "{text}");
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(text.contains("no credentials for"), "{text}");
    assert!(text.contains("--dest-creds"), "{text}");

    // Wrong password on the flag: the flag is named as the rejected source.
    let repo = client(options(creds("alice", "nope"))).repository(&registry.addr, "app");
    let err = small_push(&repo).await.expect_err("bad password");
    let text = err.to_string();
    assert!(
        text.contains("credentials from --dest-creds were rejected"),
        "{text}"
    );

    // The right password works for push and pull.
    let repo = client(options(creds("alice", "wonder"))).repository(&registry.addr, "app");
    let digest = small_push(&repo).await.expect("push with --creds");
    assert!(repo.blob_exists(&digest).await.expect("head").is_some());

    // --authfile.
    let authfile = tmp.path().join("authfile.json");
    std::fs::write(&authfile, auth_json("alice", "wonder", &registry.addr)).expect("write");
    let repo = client(ClientOptions {
        authfile: Some(authfile.clone()),
        ..options(None)
    })
    .repository(&registry.addr, "app");
    small_push(&repo).await.expect("push with --authfile");

    // REGISTRY_AUTH_FILE, with a wrong password: the file is named.
    let envfile = tmp.path().join("env-auth.json");
    std::fs::write(&envfile, auth_json("alice", "stale", &registry.addr)).expect("write");
    let repo = client(ClientOptions {
        environment: Environment {
            registry_auth_file: Some(envfile.clone()),
            ..env.clone()
        },
        ..options(None)
    })
    .repository(&registry.addr, "app");
    let err = small_push(&repo).await.expect_err("stale password");
    assert!(
        err.to_string().contains(&format!(
            "credentials from {} were rejected",
            envfile.display()
        )),
        "{err}"
    );
    std::fs::write(&envfile, auth_json("alice", "wonder", &registry.addr)).expect("write");
    let repo = client(ClientOptions {
        environment: Environment {
            registry_auth_file: Some(envfile),
            ..env.clone()
        },
        ..options(None)
    })
    .repository(&registry.addr, "app");
    small_push(&repo)
        .await
        .expect("push with REGISTRY_AUTH_FILE");

    // ~/.docker/config.json naming a credHelpers entry: docker-credential-test on PATH.
    let helper = tmp.path().join("bin/docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{}\" ] || exit 1\n\
             echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"wonder\"}}'\n",
            registry.addr
        ),
    )
    .expect("helper");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let docker_config = tmp.path().join("home/.docker/config.json");
    std::fs::create_dir_all(docker_config.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &docker_config,
        format!(r#"{{"credHelpers":{{"{}":"test"}}}}"#, registry.addr),
    )
    .expect("config");
    let repo = client(options(None)).repository(&registry.addr, "app");
    small_push(&repo)
        .await
        .expect("push with a credential helper");
}

#[tokio::test]
async fn token_auth_with_scopes_and_cache() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(issuer) = ocikit_e2e::token::TokenIssuer::start(tmp.path(), &[("bob", "builder")])
    else {
        return;
    };
    let Some(registry) = DockerRegistry::start_with(RegistryConfig {
        extra_yaml: issuer.registry_yaml(),
        ..RegistryConfig::default()
    }) else {
        return;
    };
    let env = isolated_env(tmp.path());
    let options = |creds: Option<Credentials>| ClientOptions {
        creds,
        creds_flag: "--src-creds",
        environment: env.clone(),
        ..ClientOptions::default()
    };

    let client_ok = client(options(creds("bob", "builder")));
    let repo = client_ok.repository(&registry.addr, "team/app");
    let layer = data(20_000, 5);
    let (bytes, digest) = push_image(&repo, "t1", &layer).await;
    let fetched = repo.get_manifest("t1").await.expect("pull with a token");
    assert_eq!(
        (fetched.bytes, fetched.digest.clone()),
        (bytes, digest.clone())
    );
    let (_, body) = repo
        .get_blob(&Digest::sha256_of(&layer))
        .await
        .expect("blob");
    assert_eq!(read_all(body).await.expect("read"), layer);
    // One push token served every request of the push and the pulls after.
    let after_push = issuer.issued();
    assert!(after_push <= 2, "{after_push} tokens for one repository");
    // A mount needs pull on the source too: one more token.
    let other = client_ok.repository(&registry.addr, "team/other");
    assert!(other
        .mount_blob(&Digest::sha256_of(&layer), "team/app")
        .await
        .expect("mount with a two-scope token"));

    // Anonymous: the issuer grants nothing, so a 401 naming the flag.
    let repo = client(options(None)).repository(&registry.addr, "team/app");
    let err = repo.get_manifest("t1").await.expect_err("anonymous pull");
    let text = err.to_string();
    assert!(err.is_auth(), "{text}");
    assert!(text.contains("--src-creds"), "{text}");
    // Wrong password: the token endpoint refuses, naming the rejected source.
    let repo = client(options(creds("bob", "wrong"))).repository(&registry.addr, "team/app");
    let err = repo.get_manifest("t1").await.expect_err("bad password");
    assert!(
        err.to_string()
            .contains("credentials from --src-creds were rejected"),
        "{err}"
    );
}

// ---- TLS ----

#[tokio::test]
async fn tls_with_a_test_ca_through_cert_dir_and_certs_d() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(ca) = ocikit_e2e::pki::TestCa::new(&tmp.path().join("ca")) else {
        return;
    };
    let (cert, key) = ca.issue("registry");
    let Some(registry) = DockerRegistry::start_with(RegistryConfig {
        tls: Some((cert, key)),
        ..RegistryConfig::default()
    }) else {
        return;
    };
    let env = isolated_env(tmp.path());
    let verify = |cert_dir: Option<std::path::PathBuf>, certs_d: Vec<std::path::PathBuf>| {
        client(ClientOptions {
            tls_verify: Some(true),
            cert_dir,
            certs_d,
            environment: env.clone(),
            ..ClientOptions::default()
        })
    };

    // Verified TLS without the CA fails, saying how to fix it.
    let err = verify(None, vec![])
        .repository(&registry.addr, "app")
        .ping()
        .await
        .expect_err("unknown CA");
    assert!(err.to_string().contains("--cert-dir"), "{err}");

    // The CA through --cert-dir.
    let cert_dir = tmp.path().join("certs");
    std::fs::create_dir_all(&cert_dir).expect("mkdir");
    std::fs::copy(&ca.cert, cert_dir.join("ca.crt")).expect("copy ca");
    let repo = verify(Some(cert_dir), vec![]).repository(&registry.addr, "app");
    let (bytes, digest) = push_image(&repo, "tls", &data(1000, 9)).await;
    assert_eq!(digest, Digest::sha256_of(&bytes));

    // The CA through a certs.d directory named HOST:PORT.
    let certs_d = tmp.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&registry.addr)).expect("mkdir");
    std::fs::copy(&ca.cert, certs_d.join(&registry.addr).join("ca.crt")).expect("copy ca");
    let repo = verify(None, vec![certs_d]).repository(&registry.addr, "app");
    assert_eq!(repo.get_manifest("tls").await.expect("pull").digest, digest);

    // Loopback by default: HTTPS with an unverified certificate is accepted.
    let repo = client(ClientOptions {
        environment: env.clone(),
        certs_d: vec![],
        ..ClientOptions::default()
    })
    .repository(&registry.addr, "app");
    assert_eq!(repo.get_manifest("tls").await.expect("pull").digest, digest);
}
