//! ocikit's cosign format against sigstore-rs (the `sigstore` crate's cosign
//! module), the independent implementation: key files written by each are
//! read by the other, and signatures made by each are verified by the other
//! on a real registry (Debian's docker-registry), without a transparency log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use ocikit_e2e::peers::DockerRegistry;
use ocikit_e2e::{fixtures, require, temp_dir, tool};
use sigstore::cosign::constraint::{AnnotationMarker, PrivateKeySigner};
use sigstore::cosign::verification_constraint::{
    AnnotationVerifier, PublicKeyVerifier, VerificationConstraint,
};
use sigstore::cosign::{ClientBuilder, Constraint, CosignCapabilities, SignatureLayer};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

const PASSWORD: &str = "interop-password";
const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

/// Points the harness at the main workspace's binaries.
fn use_main_workspace_binaries() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("OCIKIT_BIN_DIR").is_none() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug");
            std::env::set_var("OCIKIT_BIN_DIR", dir);
        }
    });
}

/// `oci-sign generate-key-pair` into `dir/<prefix>.key` and `.pub`.
fn ocikit_key_pair(dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let base = dir.join(prefix);
    tool("oci-sign")
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(&base)
        .env("COSIGN_PASSWORD", PASSWORD)
        .assert()
        .success();
    (base.with_extension("key"), base.with_extension("pub"))
}

/// A key pair made and written by sigstore-rs.
fn sigstore_key_pair(dir: &Path, prefix: &str) -> (PathBuf, PathBuf, SigStoreKeyPair) {
    let pair = SCHEME
        .create_signer()
        .expect("signer")
        .to_sigstore_keypair()
        .expect("key pair");
    let key = dir.join(format!("{prefix}.key"));
    let public = dir.join(format!("{prefix}.pub"));
    let pem = pair
        .private_key_to_encrypted_pem(PASSWORD.as_bytes())
        .expect("encrypted pem");
    std::fs::write(&key, pem.as_bytes()).expect("write key");
    std::fs::write(&public, pair.public_key_to_pem().expect("public pem")).expect("write pub");
    (key, public, pair)
}

/// Pushes a fresh tiny image with skopeo (neither ocikit nor sigstore-rs) and
/// returns its reference (`HOST:PORT/repo:tag`) and manifest digest.
fn push_image(registry: &DockerRegistry, repo: &str, text: &str) -> (String, String) {
    let dir = temp_dir();
    fixtures::tiny_layout(dir.path(), "v1", text);
    let digest_file = dir.path().join("digest");
    let reference = format!("{}/{repo}:v1", registry.addr);
    let status = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(format!("oci:{}:v1", dir.path().display()))
        .arg(format!("docker://{reference}"))
        .status()
        .expect("running skopeo");
    assert!(status.success(), "skopeo copy failed");
    let digest = std::fs::read_to_string(digest_file)
        .expect("digest file")
        .trim()
        .to_owned();
    (reference, digest)
}

fn sigstore_client() -> sigstore::cosign::Client {
    ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .build()
        .expect("sigstore client")
}

/// The peers this file needs; None (after a loud message) on a laptop without them.
fn peers() -> Option<DockerRegistry> {
    use_main_workspace_binaries();
    require("skopeo")?;
    DockerRegistry::start()
}

#[test]
fn key_files_written_by_oci_sign_are_read_by_sigstore_rs() {
    use_main_workspace_binaries();
    let dir = temp_dir();
    let (key, public) = ocikit_key_pair(dir.path(), "ours");
    let pem = std::fs::read(&key).expect("key file");
    let pair = SigStoreKeyPair::from_encrypted_pem(&pem, PASSWORD.as_bytes())
        .expect("sigstore-rs reads oci-sign's key");
    let ours = std::fs::read_to_string(&public).expect("pub file");
    assert_eq!(
        pair.public_key_to_pem().expect("pem").trim(),
        ours.trim(),
        "the .pub matches the private key"
    );
    assert!(
        SigStoreKeyPair::from_encrypted_pem(&pem, b"wrong").is_err(),
        "a wrong password is refused"
    );
}

#[test]
fn key_files_written_by_sigstore_rs_are_used_by_oci_sign_and_oci_verify() {
    use_main_workspace_binaries();
    let dir = temp_dir();
    let (key, public, _) = sigstore_key_pair(dir.path(), "theirs");
    let layout = dir.path().join("layout");
    fixtures::tiny_layout(&layout, "v1", "offline");
    let image = format!("oci:{}:v1", layout.display());
    // Offline signing names the repository the image will be pushed to.
    tool("oci-sign")
        .arg("--key")
        .arg(&key)
        .args([
            "--sign-container-identity",
            "registry.example/interop/offline",
        ])
        .arg(&image)
        .env("COSIGN_PASSWORD", PASSWORD)
        .assert()
        .success();
    tool("oci-verify")
        .arg("--key")
        .arg(&public)
        .arg(&image)
        .assert()
        .success();
}

#[tokio::test]
async fn signatures_by_oci_sign_are_verified_by_sigstore_rs() {
    let Some(registry) = peers() else { return };
    let dir = temp_dir();
    let (key, public) = ocikit_key_pair(dir.path(), "ours");
    let (reference, digest) = push_image(&registry, "interop/signed-by-ocikit", "ocikit signs");
    tool("oci-sign")
        .arg("--key")
        .arg(&key)
        .args(["-a", "env=prod"])
        .arg(format!("docker://{reference}"))
        .env("COSIGN_PASSWORD", PASSWORD)
        .assert()
        .success();

    let mut client = sigstore_client();
    let image: OciReference = reference.parse().expect("reference");
    let (cosign_image, resolved) = client
        .triangulate(&image, &Auth::Anonymous)
        .await
        .expect("triangulate");
    assert_eq!(resolved, digest);
    let layers = client
        .trusted_signature_layers(&Auth::Anonymous, &resolved, &cosign_image)
        .await
        .expect("signature layers");
    assert!(!layers.is_empty(), "sigstore-rs finds the .sig tag");

    let public_pem = std::fs::read(&public).expect("pub");
    let by_key = PublicKeyVerifier::new(&public_pem, &SCHEME).expect("verifier");
    let annotations = AnnotationVerifier {
        annotations: HashMap::from([("env".into(), "prod".into())]),
    };
    assert!(
        layers
            .iter()
            .any(|l| by_key.verify(l).expect("verify")
                && annotations.verify(l).expect("annotations")),
        "sigstore-rs accepts oci-sign's signature and its annotation"
    );
    let other = SCHEME
        .create_signer()
        .expect("signer")
        .to_sigstore_keypair()
        .expect("pair");
    let other_pem = other.public_key_to_pem().expect("pem");
    let by_other = PublicKeyVerifier::new(other_pem.as_bytes(), &SCHEME).expect("verifier");
    assert!(
        !layers.iter().any(|l| by_other.verify(l).unwrap_or(false)),
        "another key does not verify"
    );
}

#[tokio::test]
async fn signatures_by_sigstore_rs_are_verified_by_oci_verify() {
    let Some(registry) = peers() else { return };
    let dir = temp_dir();
    let (key, public, _) = sigstore_key_pair(dir.path(), "theirs");
    let (_, other_public) = ocikit_key_pair(dir.path(), "other");
    let (reference, digest) = push_image(
        &registry,
        "interop/signed-by-sigstore-rs",
        "sigstore-rs signs",
    );

    let mut client = sigstore_client();
    let image: OciReference = reference.parse().expect("reference");
    let (cosign_image, resolved) = client
        .triangulate(&image, &Auth::Anonymous)
        .await
        .expect("triangulate");
    let mut layer = SignatureLayer::new_unsigned(&image, &resolved).expect("unsigned layer");
    AnnotationMarker::new(HashMap::from([("env".into(), "prod".into())]))
        .add_constraint(&mut layer)
        .expect("annotate");
    let pem = std::fs::read(&key).expect("key");
    let signer =
        PrivateKeySigner::new_with_raw(pem.into(), PASSWORD.as_bytes().to_vec().into(), &SCHEME)
            .expect("signer");
    assert!(signer.add_constraint(&mut layer).expect("sign"));
    client
        .push_signature(None, &Auth::Anonymous, &cosign_image, vec![layer])
        .await
        .expect("sigstore-rs pushes its signature");

    let image_arg = format!("docker://{reference}");
    let out = tool("oci-verify")
        .arg("--key")
        .arg(&public)
        .arg(&image_arg)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&digest),
        "the output line names the verified digest: {stdout}"
    );
    tool("oci-verify")
        .arg("--key")
        .arg(&public)
        .args(["-a", "env=prod"])
        .arg(&image_arg)
        .assert()
        .success();
    tool("oci-verify")
        .arg("--key")
        .arg(&public)
        .args(["-a", "env=staging"])
        .arg(&image_arg)
        .assert()
        .code(12);
    tool("oci-verify")
        .arg("--key")
        .arg(&other_public)
        .arg(&image_arg)
        .assert()
        .code(12);
}

/// `sigstore-verify` (this crate's binary, the peer of `cargo xtask bench
/// sign`) agrees with oci-verify on an image signed by oci-sign: verified
/// with the key, exit 12 with another key.
#[test]
fn the_bench_peer_sigstore_verify_checks_oci_sign_signatures() {
    let Some(registry) = peers() else { return };
    let dir = temp_dir();
    let (key, public) = ocikit_key_pair(dir.path(), "ours");
    let (_, other_public) = ocikit_key_pair(dir.path(), "other");
    let (reference, digest) = push_image(&registry, "interop/bench-peer", "bench peer");
    let peer = |public: &Path, image: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sigstore-verify"))
            .arg("--key")
            .arg(public)
            .arg("--allow-http-registry")
            .arg(image)
            .output()
            .expect("running sigstore-verify")
    };
    let unsigned = peer(&public, &reference);
    assert_ne!(unsigned.status.code(), Some(0), "nothing is signed yet");
    tool("oci-sign")
        .arg("--key")
        .arg(&key)
        .arg(format!("docker://{reference}"))
        .env("COSIGN_PASSWORD", PASSWORD)
        .assert()
        .success();
    let by_digest = format!("{}@{digest}", reference.rsplit_once(':').expect("tag").0);
    for image in [&reference, &by_digest] {
        let out = peer(&public, image);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&digest));
    }
    let out = peer(&other_public, &reference);
    assert_eq!(out.status.code(), Some(12), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no matching signatures"));
}
