//! oci-copy against a docker-registry that requires client certificates
//! (mutual TLS, distribution's `http.tls.clientcas`): the client certificate
//! and key from `--dest-cert-dir` and from the user's certs.d directory, and
//! a clear error naming both when none is given.

use std::path::Path;

use ocikit_e2e::fixtures::small_image;
use ocikit_e2e::peers::{DockerRegistry, RegistryConfig};
use ocikit_e2e::pki::TestCa;
use ocikit_e2e::{temp_dir, tool};
use serde_json::Value;

fn json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().expect("a JSON line")).expect("JSON")
}

/// A certificate directory as Docker and containers/image read it: the CA
/// as `ca.crt`, and (when given) a client pair as `client.cert` + `client.key`.
fn cert_dir(dir: &Path, ca: &Path, client: Option<&(std::path::PathBuf, std::path::PathBuf)>) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::copy(ca, dir.join("ca.crt")).expect("ca");
    if let Some((cert, key)) = client {
        std::fs::copy(cert, dir.join("client.cert")).expect("cert");
        std::fs::copy(key, dir.join("client.key")).expect("key");
    }
}

#[test]
fn mutual_tls_pushes_with_the_client_certificate_and_says_how_without_it() {
    let dir = temp_dir();
    let Some(ca) = TestCa::new(&dir.path().join("ca")) else {
        return;
    };
    let server = ca.issue("registry");
    let client = ca.issue("client");
    let Some(registry) = DockerRegistry::start_with(RegistryConfig {
        tls: Some(server),
        client_cas: vec![ca.cert.clone()],
        ..RegistryConfig::default()
    }) else {
        return;
    };
    let src = dir.path().join("src");
    let image = small_image(&src, "v1");
    let source = format!("oci:{}:v1", src.display());
    // An empty home: no certs.d and no auth files of the user running the tests.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let oci_copy = |home: &Path| {
        let mut cmd = tool("oci-copy");
        cmd.env("HOME", home)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        cmd
    };

    // The client pair from --dest-cert-dir, verified TLS.
    let certs = dir.path().join("certs");
    cert_dir(&certs, &ca.cert, Some(&client));
    let out = oci_copy(&home)
        .args(["--dest-tls-verify=true", "--dest-cert-dir"])
        .arg(&certs)
        .args([&source, &registry.url("app:1")])
        .assert()
        .success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);

    // The client pair from the user's certs.d directory for HOST:PORT.
    let user_certs = home.join(".config/containers/certs.d").join(&registry.addr);
    cert_dir(&user_certs, &ca.cert, Some(&client));
    let out = oci_copy(&home)
        .args(["--dest-tls-verify=true", &source, &registry.url("app:2")])
        .assert()
        .success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], image.digest);
    // Loopback defaults (unverified HTTPS) present the client certificate too.
    oci_copy(&home)
        .args([&source, &registry.url("app:3")])
        .assert()
        .success();

    // Without a client certificate: the error names the cause and both fixes,
    // verified or not (no fallback to plain HTTP hides it).
    let ca_only = dir.path().join("ca-only");
    cert_dir(&ca_only, &ca.cert, None);
    let empty_home = dir.path().join("empty-home");
    std::fs::create_dir_all(&empty_home).expect("home");
    for args in [
        vec![
            "--dest-tls-verify=true".to_owned(),
            "--dest-cert-dir".to_owned(),
            ca_only.display().to_string(),
        ],
        vec![],
    ] {
        let out = oci_copy(&empty_home)
            .args(["--retry-times", "0"])
            .args(&args)
            .args([&source, &registry.url("app:4")])
            .assert()
            .code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(
            stderr.contains(&registry.addr)
                && stderr.contains("requires a client certificate")
                && stderr.contains("--dest-cert-dir")
                && stderr.contains(&format!("certs.d/{}/", registry.addr)),
            "{args:?}: {stderr}"
        );
    }

    // A client certificate from a CA the registry does not trust: the error
    // names the certificate that was refused.
    let Some(stranger_ca) = TestCa::new(&dir.path().join("stranger-ca")) else {
        return;
    };
    let stranger = stranger_ca.issue("stranger");
    let stranger_dir = dir.path().join("stranger");
    cert_dir(&stranger_dir, &ca.cert, Some(&stranger));
    let out = oci_copy(&empty_home)
        .args([
            "--retry-times",
            "0",
            "--dest-tls-verify=true",
            "--dest-cert-dir",
        ])
        .arg(&stranger_dir)
        .args([&source, &registry.url("app:5")])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "refused {}",
            stranger_dir.join("client.cert").display()
        )) && stderr.contains("clientcas"),
        "{stderr}"
    );
}
