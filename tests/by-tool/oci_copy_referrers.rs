//! oci-copy carries OCI 1.1 referrers (signatures, SBOMs, attestations with
//! a `subject`): through docker-registry, which has no referrers API (so the
//! referrers tag schema is written and read), through oci-serve's referrers
//! API, and back into layouts; `--remove-signatures` leaves them behind.

use std::path::Path;

use ocikit_e2e::fixtures::{check_layout, referrer_of, small_image};
use ocikit_e2e::peers::{DockerRegistry, OciServe};
use ocikit_e2e::{temp_dir, tool};
use serde_json::Value;

const SBOM: &str = "application/spdx+json";
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const ACCEPT: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

fn json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().expect("a JSON line")).expect("JSON")
}

/// `GET http://ADDR/v2/<path>` as JSON, or `None` on 404.
fn get(addr: &str, path: &str) -> Option<Value> {
    let resp = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/v2/{path}"))
        .header("Accept", ACCEPT)
        .send()
        .expect("registry answers");
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    Some(serde_json::from_slice(&resp.bytes().expect("body")).expect("JSON"))
}

/// `PUT http://ADDR/v2/<repo>/manifests/<reference>` of raw bytes.
fn put_manifest(addr: &str, repo: &str, reference: &str, media_type: &str, body: Vec<u8>) {
    let resp = reqwest::blocking::Client::new()
        .put(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body)
        .send()
        .expect("registry answers");
    assert!(
        resp.status().is_success(),
        "PUT {reference}: {}",
        resp.status()
    );
}

fn tag_form(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The digests an index (a tag schema index or a referrers answer) lists,
/// with their artifact types.
fn listed(index: &Value) -> Vec<(String, String)> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap_or_default().to_owned(),
                d["artifactType"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A layout holding image `v1` with an SBOM, and a signature of that SBOM.
struct Signed {
    image: String,
    sbom: String,
    sbom_sig: String,
}

fn signed_layout(dir: &Path) -> Signed {
    let image = small_image(dir, "v1").digest;
    let sbom = referrer_of(dir, &image, SBOM, br#"{"spdxVersion":"SPDX-2.3"}"#);
    let sbom_sig = referrer_of(dir, &sbom, SIG, b"signature of the sbom");
    Signed {
        image,
        sbom,
        sbom_sig,
    }
}

/// The referrers a layout lists for `subject` (untagged entries whose
/// manifest names it).
fn layout_referrers(dir: &Path, subject: &str) -> Vec<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("json");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|d| {
            let digest = d["digest"].as_str()?;
            let body: Value = serde_json::from_slice(
                &std::fs::read(ocikit_e2e::fixtures::blob_path(dir, digest)).ok()?,
            )
            .ok()?;
            (body["subject"]["digest"] == subject).then(|| digest.to_owned())
        })
        .collect()
}

#[test]
fn referrers_go_through_docker_registry_by_the_tag_schema_and_come_back() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    let src = dir.path().join("src");
    let s = signed_layout(&src);
    let out = tool("oci-copy")
        .args([&format!("oci:{}:v1", src.display()), &registry.url("app:1")])
        .assert()
        .success();
    let line = json_line(&out.get_output().stdout);
    assert_eq!(line["digest"], s.image);
    assert_eq!(
        line["referrers"],
        serde_json::json!([s.sbom, s.sbom_sig]),
        "{line}"
    );
    // distribution 2.8 has no referrers API: the tag schema indexes were written.
    assert!(get(&registry.addr, &format!("app/referrers/{}", s.image)).is_none());
    let schema = get(
        &registry.addr,
        &format!("app/manifests/{}", tag_form(&s.image)),
    )
    .expect("the sha256-<hex> index of the image");
    assert_eq!(
        schema["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(listed(&schema), [(s.sbom.clone(), SBOM.to_owned())]);
    assert_eq!(
        schema["manifests"][0]["annotations"]["org.example.about"],
        s.image
    );
    let nested = get(
        &registry.addr,
        &format!("app/manifests/{}", tag_form(&s.sbom)),
    )
    .expect("the index of the sbom");
    assert_eq!(listed(&nested), [(s.sbom_sig.clone(), SIG.to_owned())]);

    // Copying again lists nothing twice.
    tool("oci-copy")
        .args([&format!("oci:{}:v1", src.display()), &registry.url("app:1")])
        .assert()
        .success();
    let schema = get(
        &registry.addr,
        &format!("app/manifests/{}", tag_form(&s.image)),
    )
    .expect("index");
    assert_eq!(listed(&schema).len(), 1);

    // Registry to registry: read from the tag schema, written to it again.
    let out = tool("oci-copy")
        .args([&registry.url("app:1"), &registry.url("mirror/app:1")])
        .assert()
        .success();
    assert_eq!(
        json_line(&out.get_output().stdout)["referrers"],
        serde_json::json!([s.sbom, s.sbom_sig])
    );
    let mirrored = get(
        &registry.addr,
        &format!("mirror/app/manifests/{}", tag_form(&s.image)),
    )
    .expect("index in the mirror");
    assert_eq!(listed(&mirrored), [(s.sbom.clone(), SBOM.to_owned())]);

    // And back into a layout, listed untagged beside the image.
    let back = dir.path().join("back");
    tool("oci-copy")
        .args([
            &registry.url("mirror/app:1"),
            &format!("oci:{}:1", back.display()),
        ])
        .assert()
        .success();
    let state = check_layout(&back).expect("valid layout");
    assert_eq!(state.tagged("1"), Some(s.image.as_str()));
    assert_eq!(
        layout_referrers(&back, &s.image),
        std::slice::from_ref(&s.sbom)
    );
    assert_eq!(
        layout_referrers(&back, &s.sbom),
        std::slice::from_ref(&s.sbom_sig)
    );

    // --remove-signatures leaves them behind.
    let out = tool("oci-copy")
        .args([
            "--remove-signatures",
            &registry.url("app:1"),
            &registry.url("bare/app:1"),
        ])
        .assert()
        .success();
    assert!(json_line(&out.get_output().stdout)
        .get("referrers")
        .is_none());
    assert!(get(
        &registry.addr,
        &format!("bare/app/manifests/{}", tag_form(&s.image))
    )
    .is_none());
    let bare = dir.path().join("bare");
    tool("oci-copy")
        .args([
            "--remove-signatures",
            &registry.url("app:1"),
            &format!("oci:{}:1", bare.display()),
        ])
        .assert()
        .success();
    assert_eq!(check_layout(&bare).expect("valid").entries.len(), 1);
}

#[test]
fn referrers_go_through_oci_serve_by_its_referrers_api() {
    let server = OciServe::start();
    let dir = temp_dir();
    let src = dir.path().join("src");
    let s = signed_layout(&src);
    let out = tool("oci-copy")
        .args([&format!("oci:{}:v1", src.display()), &server.url("app:1")])
        .assert()
        .success();
    assert_eq!(
        json_line(&out.get_output().stdout)["referrers"],
        serde_json::json!([s.sbom, s.sbom_sig])
    );
    let api = get(&server.addr, &format!("app/referrers/{}", s.image)).expect("referrers API");
    assert_eq!(listed(&api), [(s.sbom.clone(), SBOM.to_owned())]);
    // The registry indexed them itself: no tag schema tag was written.
    let tags = get(&server.addr, "app/tags/list").expect("tags");
    assert_eq!(tags["tags"], serde_json::json!(["1"]));

    let back = dir.path().join("back");
    let out = tool("oci-copy")
        .args([&server.url("app:1"), &format!("oci:{}:1", back.display())])
        .assert()
        .success();
    assert_eq!(
        json_line(&out.get_output().stdout)["referrers"],
        serde_json::json!([s.sbom, s.sbom_sig])
    );
    check_layout(&back).expect("valid layout");
    assert_eq!(
        layout_referrers(&back, &s.image),
        std::slice::from_ref(&s.sbom)
    );
    assert_eq!(
        layout_referrers(&back, &s.sbom),
        std::slice::from_ref(&s.sbom_sig)
    );
}

#[test]
fn a_tag_schema_tag_holding_something_else_is_refused_and_nothing_is_tagged() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    let src = dir.path().join("src");
    let s = signed_layout(&src);
    // Someone put an ordinary image under the image's sha256-<hex> tag.
    let squatter = dir.path().join("squatter");
    small_image(&squatter, "x");
    tool("oci-copy")
        .args([
            &format!("oci:{}:x", squatter.display()),
            &registry.url(&format!("app:{}", tag_form(&s.image))),
        ])
        .assert()
        .success();
    let out = tool("oci-copy")
        .args([&format!("oci:{}:v1", src.display()), &registry.url("app:1")])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("app:{}", tag_form(&s.image)))
            && stderr.contains("not the OCI image index of the referrers tag schema")
            && stderr.contains("move what it holds to another tag or delete it"),
        "{stderr}"
    );
    assert!(
        get(&registry.addr, "app/manifests/1").is_none(),
        "the copy failed, so the tag was not written"
    );
    // Reading from that repository fails the same way, naming the tag.
    let err = tool("oci-copy")
        .args([
            &registry.url(&format!("app@{}", s.image)),
            &format!("oci:{}:1", dir.path().join("out").display()),
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&err.get_output().stderr).into_owned();
    assert!(
        stderr.contains("cannot use the referrers tag schema"),
        "{stderr}"
    );
}

#[test]
fn a_referrer_listed_for_the_wrong_subject_is_refused() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = temp_dir();
    let src = dir.path().join("src");
    let s = signed_layout(&src);
    tool("oci-copy")
        .args([&format!("oci:{}:v1", src.display()), &registry.url("app:1")])
        .assert()
        .success();
    // Forge the image's index so that it lists the signature of the SBOM,
    // whose subject is the SBOM, not the image.
    let forged = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": s.sbom_sig,
            "size": std::fs::metadata(ocikit_e2e::fixtures::blob_path(&src, &s.sbom_sig)).expect("sig").len(),
            "artifactType": SIG,
        }],
    });
    put_manifest(
        &registry.addr,
        "app",
        &tag_form(&s.image),
        "application/vnd.oci.image.index.v1+json",
        forged.to_string().into_bytes(),
    );
    let out = tool("oci-copy")
        .args([
            &registry.url("app:1"),
            &format!("oci:{}:1", dir.path().join("out").display()),
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "{} is listed as a referrer of {}, but its subject is another manifest",
            s.sbom_sig, s.image
        )) && stderr.contains("--remove-signatures"),
        "{stderr}"
    );
    // The way out the message names works.
    tool("oci-copy")
        .args([
            "--remove-signatures",
            &registry.url("app:1"),
            &format!("oci:{}:1", dir.path().join("out").display()),
        ])
        .assert()
        .success();
}

#[test]
fn a_layout_without_a_tag_means_its_image_not_its_referrers() {
    let dir = temp_dir();
    let src = dir.path().join("signed");
    let signed = signed_layout(&src);
    let out = tool("oci-inspect")
        .args(["--digest", &format!("oci:{}", src.display())])
        .assert()
        .success();
    assert_eq!(json_line(&out.get_output().stdout)["digest"], signed.image);
    let dest = dir.path().join("copy");
    tool("oci-copy")
        .args([
            &format!("oci:{}", src.display()),
            &format!("oci:{}:v1", dest.display()),
        ])
        .assert()
        .success();
    check_layout(&dest).expect("a valid layout");
    assert_eq!(layout_referrers(&dest, &signed.image), [signed.sbom]);
}
