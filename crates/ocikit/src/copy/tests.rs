//! Engine tests over layouts and archives (the registry ones are end to end).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use super::*;
use crate::layout::Layout;
use crate::manifest::{Platform, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Writes an image with `layers` gzip layers into `layout`; returns its descriptor.
fn image(layout: &Layout, seed: u8, layers: usize, docker: bool) -> Descriptor {
    let (manifest_type, config_type, layer_type) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
    } else {
        (manifest::OCI_MANIFEST, OCI_CONFIG, manifest::OCI_LAYER_GZIP)
    };
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let config_digest = layout.write_blob(config.as_bytes(), None).expect("config");
    let mut entries = Vec::new();
    for i in 0..layers {
        let blob = gzip(&vec![seed.wrapping_add(i as u8); 100_000 + i]);
        let d = layout.write_blob(&blob, None).expect("layer");
        entries.push(format!(
            r#"{{"mediaType":"{layer_type}","digest":"{d}","size":{}}}"#,
            blob.len()
        ));
    }
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{manifest_type}","config":{{"mediaType":"{config_type}","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        entries.join(",")
    );
    let d = layout.write_blob(m.as_bytes(), None).expect("manifest");
    Descriptor::new(manifest_type, d, m.len() as u64)
}

fn index(layout: &Layout, children: &[(Descriptor, &str)]) -> Descriptor {
    let entries: Vec<Descriptor> = children
        .iter()
        .map(|(d, arch)| {
            let mut d = d.clone();
            d.platform = Some(Platform {
                architecture: (*arch).into(),
                os: "linux".into(),
                variant: None,
                extra: BTreeMap::new(),
            });
            d
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": entries,
    })
    .to_string();
    let d = layout.write_blob(body.as_bytes(), None).expect("index");
    Descriptor::new(manifest::OCI_INDEX, d, body.len() as u64)
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Progress for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().expect("lock").push(event);
    }
}

fn r(s: &str) -> ImageReference {
    ImageReference::parse(s).expect(s)
}

async fn run(src: &str, dst: &str, options: &CopyOptions) -> Result<CopyReport, CopyError> {
    copy(&r(src), &r(dst), options, Arc::new(NoProgress)).await
}

#[tokio::test]
async fn layout_to_archive_to_layout_keeps_digests() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = |p: &str| dir.path().join(p).display().to_string();
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let img = image(&src, 1, 3, false);
    src.set_manifest(&img, Some("v1")).expect("tag");
    let progress = Arc::new(Recorder::default());
    let report = copy(
        &r(&format!("oci:{}:v1", d("src"))),
        &r(&format!("oci-archive:{}:v1", d("a.tar"))),
        &CopyOptions::default(),
        progress.clone(),
    )
    .await
    .expect("to archive");
    assert_eq!(report.digest, img.digest);
    assert!(!report.digest_changed());
    assert_eq!(report.blobs_copied, 4);
    let written = progress
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|e| matches!(e, Event::ManifestWritten { digest, .. } if digest == &img.digest));
    assert!(written);
    let back = run(
        &format!("oci-archive:{}:v1", d("a.tar")),
        &format!("oci:{}:again", d("dst")),
        &CopyOptions::default(),
    )
    .await
    .expect("from archive");
    assert_eq!(back.digest, img.digest);
    assert_eq!(back.image.to_string(), format!("oci:{}:again", d("dst")));
    let dst = Layout::open(&dir.path().join("dst")).expect("dst");
    assert_eq!(dst.check().expect("valid"), 5);
    assert_eq!(
        dst.resolve(Some("again"), None).expect("tag").digest,
        img.digest
    );
    // A rerun transfers nothing.
    let again = run(
        &format!("oci:{}:v1", d("src")),
        &format!("oci:{}:again", d("dst")),
        &CopyOptions::default(),
    )
    .await
    .expect("rerun");
    assert_eq!((again.blobs_copied, again.blobs_skipped), (0, 4));
}

#[tokio::test]
async fn docker_source_is_converted_for_layouts_unless_digests_are_preserved() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let img = image(&src, 2, 1, true);
    src.set_manifest(&img, Some("d")).expect("tag");
    let s = format!("oci:{}:d", dir.path().join("src").display());
    let t = format!("oci:{}:d", dir.path().join("dst").display());
    let options = CopyOptions {
        preserve_digests: true,
        ..CopyOptions::default()
    };
    let err = run(&s, &t, &options)
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("converting Docker v2s2 to OCI"), "{err}");
    assert!(err.contains("--preserve-digests"), "{err}");
    let dst = Layout::open(&dir.path().join("dst")).expect("dst");
    assert!(dst.tags().expect("tags").is_empty(), "nothing tagged");
    let report = run(&s, &t, &CopyOptions::default())
        .await
        .expect("converted");
    assert!(report.digest_changed());
    assert_eq!(report.media_type, manifest::OCI_MANIFEST);
    assert_eq!(dst.check().expect("valid"), 3);
    // A layout holds OCI manifests only, as skopeo writes it.
    let err = run(
        &t,
        &format!("oci:{}:v2", dir.path().join("v2").display()),
        &CopyOptions {
            format: Some(Format::V2s2),
            ..CopyOptions::default()
        },
    )
    .await
    .expect_err("v2s2 into a layout")
    .to_string();
    assert!(err.contains("holds OCI manifests only"), "{err}");
}

#[tokio::test]
async fn indexes_copy_whole_or_by_platform() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let amd = image(&src, 3, 1, false);
    let arm = image(&src, 4, 1, false);
    let idx = index(&src, &[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    src.set_manifest(&idx, Some("multi")).expect("tag");
    let s = format!("oci:{}:multi", dir.path().join("src").display());
    let whole = run(
        &s,
        &format!("oci:{}", dir.path().join("w").display()),
        &CopyOptions::default(),
    )
    .await
    .expect("whole");
    assert_eq!(whole.digest, idx.digest);
    let w = Layout::open(&dir.path().join("w")).expect("w");
    assert_eq!(w.check().expect("valid"), 7);
    let system = run(
        &s,
        &format!("oci:{}:one", dir.path().join("s").display()),
        &CopyOptions {
            multi_arch: MultiArch::System,
            ..CopyOptions::default()
        },
    )
    .await;
    let (_, arch) = host_platform();
    match arch {
        "amd64" => assert_eq!(system.expect("amd64").digest, amd.digest),
        "arm64" => assert_eq!(system.expect("arm64").digest, arm.digest),
        _ => assert!(system
            .expect_err("no platform")
            .to_string()
            .contains("linux/amd64, linux/arm64")),
    }
}

#[tokio::test]
async fn corrupt_blob_is_rejected_and_nothing_is_tagged() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let img = image(&src, 5, 2, false);
    src.set_manifest(&img, Some("v1")).expect("tag");
    let bytes = src.read_manifest(&img.digest).expect("manifest");
    let parsed = Manifest::parse(&bytes, None).expect("parse");
    let victim = parsed.references()[2].digest.clone();
    let path = src.blob_path(&victim);
    let mut data = std::fs::read(&path).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&path, data).expect("corrupt");
    let err = run(
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &format!("oci:{}:v1", dir.path().join("dst").display()),
        &CopyOptions::default(),
    )
    .await
    .expect_err("corrupt")
    .to_string();
    assert!(
        err.contains(&victim.to_string()) && err.contains("digest mismatch"),
        "{err}"
    );
    let dst = Layout::open(&dir.path().join("dst")).expect("dst");
    assert!(dst.manifests().expect("index").is_empty());
    assert_eq!(dst.blob_size(&victim).expect("stat"), None);
    dst.check().expect("still valid");
}

#[tokio::test]
async fn recompression_changes_digests_and_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let img = image(&src, 6, 2, false);
    src.set_manifest(&img, Some("v1")).expect("tag");
    let progress = Arc::new(Recorder::default());
    let report = copy(
        &r(&format!("oci:{}:v1", dir.path().join("src").display())),
        &r(&format!("oci:{}:z", dir.path().join("dst").display())),
        &CopyOptions {
            compress: Some(Compression::Zstd),
            ..CopyOptions::default()
        },
        progress.clone(),
    )
    .await
    .expect("zstd");
    assert!(report.digest_changed());
    let dst = Layout::open(&dir.path().join("dst")).expect("dst");
    dst.check().expect("valid");
    let parsed = Manifest::parse(&dst.read_manifest(&report.digest).expect("m"), None).expect("p");
    let ManifestKind::Image { layers, .. } = parsed.kind else {
        panic!("image")
    };
    assert!(layers
        .iter()
        .all(|l| l.media_type == manifest::OCI_LAYER_ZSTD));
    let mut content = Vec::new();
    std::io::Read::read_to_end(
        &mut zstd::stream::read::Decoder::new(
            dst.open_blob(&layers[0].digest, None).expect("blob"),
        )
        .expect("zstd"),
        &mut content,
    )
    .expect("decode");
    assert_eq!(content, vec![6u8; 100_000]);
    let notes = progress.0.lock().expect("lock");
    assert!(notes
        .iter()
        .any(|e| matches!(e, Event::Note(n) if n.contains("recompressed layer"))));
}

#[tokio::test]
async fn cosign_signature_tags_travel_unless_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let img = image(&src, 7, 1, false);
    src.set_manifest(&img, Some("v1")).expect("tag");
    let sig = image(&src, 8, 1, false);
    let sig_tag = format!("{}.sig", img.digest.to_tag_form());
    src.set_manifest(&sig, Some(&sig_tag)).expect("sig tag");
    let s = format!("oci:{}:v1", dir.path().join("src").display());
    let report = run(
        &s,
        &format!("oci:{}:v1", dir.path().join("a").display()),
        &CopyOptions::default(),
    )
    .await
    .expect("copy");
    assert_eq!(report.signatures, std::slice::from_ref(&sig_tag));
    let a = Layout::open(&dir.path().join("a")).expect("a");
    assert_eq!(
        a.resolve(Some(&sig_tag), None).expect("sig").digest,
        sig.digest
    );
    let bare = run(
        &s,
        &format!("oci:{}:v1", dir.path().join("b").display()),
        &CopyOptions {
            remove_signatures: true,
            ..CopyOptions::default()
        },
    )
    .await
    .expect("copy");
    assert!(bare.signatures.is_empty());
    let b = Layout::open(&dir.path().join("b")).expect("b");
    assert_eq!(b.tags().expect("tags"), ["v1"]);
}

/// Writes an OCI 1.1 artifact whose `subject` is `subject` into `layout`,
/// listed untagged (as oci-sign and oras write referrers into a layout).
fn referrer(
    layout: &Layout,
    subject: &Descriptor,
    artifact_type: &str,
    payload: &[u8],
) -> Descriptor {
    let empty = layout.write_blob(b"{}", None).expect("empty config");
    let blob = layout.write_blob(payload, None).expect("payload");
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": manifest::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": blob.to_string(), "size": payload.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    })
    .to_string();
    let d = layout.write_blob(body.as_bytes(), None).expect("referrer");
    let listed = Descriptor::new(manifest::OCI_MANIFEST, d, body.len() as u64);
    layout.set_manifest(&listed, None).expect("list referrer");
    listed
}

#[tokio::test]
async fn referrers_travel_recursively_unless_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = |p: &str| dir.path().join(p).display().to_string();
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let amd = image(&src, 1, 1, false);
    let arm = image(&src, 2, 1, false);
    let idx = index(&src, &[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    src.set_manifest(&idx, Some("v1")).expect("tag");
    let sbom = referrer(&src, &idx, "application/spdx+json", b"{\"spdx\":1}");
    let sbom_sig = referrer(
        &src,
        &sbom,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        b"sig of sbom",
    );
    let arm_sig = referrer(
        &src,
        &arm,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        b"sig of arm",
    );
    // An artifact about something else stays behind.
    let other = image(&src, 3, 1, false);
    src.set_manifest(&other, Some("other")).expect("other");
    let unrelated = referrer(&src, &other, "application/spdx+json", b"other sbom");
    // A cosign tag on a child of the index travels too.
    let child_sig = image(&src, 4, 1, false);
    let child_sig_tag = format!("{}.sig", amd.digest.to_tag_form());
    src.set_manifest(&child_sig, Some(&child_sig_tag))
        .expect("child sig");

    let report = run(
        &format!("oci:{}:v1", path("src")),
        &format!("oci:{}:v1", path("a")),
        &CopyOptions::default(),
    )
    .await
    .expect("copy");
    let mut got = report.referrers.clone();
    got.sort_by_key(|d| d.to_string());
    let mut want = vec![
        sbom.digest.clone(),
        sbom_sig.digest.clone(),
        arm_sig.digest.clone(),
    ];
    want.sort_by_key(|d| d.to_string());
    assert_eq!(got, want);
    assert_eq!(report.signatures, std::slice::from_ref(&child_sig_tag));
    let a = Layout::open(&dir.path().join("a")).expect("a");
    a.check().expect("valid");
    let found = a.referrers(&idx.digest, None).expect("referrers");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, sbom.digest);
    assert_eq!(
        found[0].artifact_type.as_deref(),
        Some("application/spdx+json")
    );
    assert_eq!(
        found[0].annotation("org.opencontainers.image.created"),
        Some("2026-01-01T00:00:00Z")
    );
    assert_eq!(
        a.referrers(&sbom.digest, None).expect("nested")[0].digest,
        sbom_sig.digest
    );
    assert_eq!(
        a.referrers(&arm.digest, None).expect("child")[0].digest,
        arm_sig.digest
    );
    assert!(a.blob_size(&unrelated.digest).expect("stat").is_none());
    assert_eq!(
        a.resolve(Some(&child_sig_tag), None).expect("tag").digest,
        child_sig.digest
    );

    // Copying again adds nothing twice.
    run(
        &format!("oci:{}:v1", path("src")),
        &format!("oci:{}:v1", path("a")),
        &CopyOptions::default(),
    )
    .await
    .expect("again");
    let a = Layout::open(&dir.path().join("a")).expect("a");
    assert_eq!(
        a.manifests().expect("index").len(),
        5,
        "v1, the sig tag and three referrers"
    );

    let bare = run(
        &format!("oci:{}:v1", path("src")),
        &format!("oci:{}:v1", path("b")),
        &CopyOptions {
            remove_signatures: true,
            ..CopyOptions::default()
        },
    )
    .await
    .expect("bare");
    assert!(bare.referrers.is_empty() && bare.signatures.is_empty());
    let b = Layout::open(&dir.path().join("b")).expect("b");
    assert_eq!(b.manifests().expect("index").len(), 1);
    assert!(b.blob_size(&sbom.digest).expect("stat").is_none());
}

#[tokio::test]
async fn converted_images_leave_their_referrers_behind() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Layout::open_or_create(&dir.path().join("src")).expect("src");
    let img = image(&src, 5, 1, false);
    src.set_manifest(&img, Some("v1")).expect("tag");
    referrer(&src, &img, "application/spdx+json", b"sbom");
    let report = run(
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &format!("oci:{}:v1", dir.path().join("z").display()),
        &CopyOptions {
            compress: Some(Compression::Zstd),
            ..CopyOptions::default()
        },
    )
    .await
    .expect("recompress");
    assert!(report.digest_changed());
    assert!(
        report.referrers.is_empty(),
        "an SBOM of the old digest does not describe the new image"
    );
}
