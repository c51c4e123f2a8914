//! Test images made from scratch, without any ocikit code, so a test of an
//! ocikit tool never depends on the tool it checks.

use std::path::Path;

use sha2::{Digest as _, Sha256};

/// What [`tiny_layout`] wrote.
pub struct TinyImage {
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
}

/// Writes an OCI image layout at `dir` holding one small linux/amd64 image
/// tagged `tag`: one uncompressed layer with `/hello.txt` containing `text`
/// (different texts give different digests).
pub fn tiny_layout(dir: &Path, tag: &str, text: &str) -> TinyImage {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let layer = tar_with_file("hello.txt", text.as_bytes());
    let layer_digest = put_blob(dir, &layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let config_digest = put_blob(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let digest = put_blob(dir, &manifest);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(dir.join("index.json"), index).expect("index.json");
    TinyImage { digest, manifest }
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let path = dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    std::fs::write(path, bytes).expect("blob");
    digest
}

fn tar_with_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(contents.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, name, contents)
        .expect("tar entry");
    builder.into_inner().expect("tar")
}

/// What [`image_from_tars`] wrote.
pub struct Image {
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// The manifest size.
    pub size: u64,
    /// The config digest.
    pub config: String,
    /// The layer digests.
    pub layers: Vec<String>,
}

/// Where a blob of a layout lives.
pub fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("ALG:HEX");
    dir.join("blobs").join(algorithm).join(hex)
}

/// A tar holding `files` (path, content), owned by root, mtime 0.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, *body)
            .expect("tar entry");
    }
    builder.into_inner().expect("tar")
}

/// Deterministic incompressible bytes (xorshift), `len` of them.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Adds an image whose layers are `tars` (gzip-compressed when `gzip`) to the
/// layout at `dir` (created if needed), tagged `tag` (a tag already there
/// moves to the new image).
pub fn image_from_tars(dir: &Path, tag: &str, tars: &[Vec<u8>], gzip: bool) -> Image {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in tars {
        diff_ids.push(sha256(tar));
        let (blob, media_type) = if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut encoder, tar).expect("gzip");
            (
                encoder.finish().expect("gzip"),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (tar.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        let digest = put_blob(dir, &blob);
        descriptors.push(
            serde_json::json!({"mediaType": media_type, "digest": digest, "size": blob.len()}),
        );
        layers.push(digest);
    }
    let config = serde_json::json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Labels": {"fixture": tag}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = put_blob(dir, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    })
    .to_string();
    let digest = put_blob(dir, manifest.as_bytes());
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"schemaVersion": 2, "manifests": []}));
    let list = index["manifests"].as_array_mut().expect("manifests");
    list.retain(|m| m["annotations"][REF_NAME] != tag);
    list.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": manifest.len(),
        "annotations": {REF_NAME: tag},
    }));
    std::fs::write(&index_path, index.to_string()).expect("index.json");
    Image {
        digest,
        size: manifest.len() as u64,
        config: config_digest,
        layers,
    }
}

/// The tag annotation of a layout's index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A small gzip image with two layers of text files, tagged `tag`.
pub fn small_image(dir: &Path, tag: &str) -> Image {
    let tars = [
        tar_of(&[("etc/os-release", b"ID=fixture\n".as_slice())]),
        tar_of(&[("hello.txt", format!("hello {tag}\n").as_bytes())]),
    ];
    image_from_tars(dir, tag, &tars, true)
}

/// An image of `count` uncompressed layers of `size` incompressible bytes
/// each, tagged `tag`: large enough to interrupt a copy of it.
pub fn big_image(dir: &Path, tag: &str, count: usize, size: usize) -> Image {
    let tars: Vec<Vec<u8>> = (0..count)
        .map(|i| tar_of(&[(&format!("blob{i}"), noise(i as u64 + 7, size).as_slice())]))
        .collect();
    image_from_tars(dir, tag, &tars, false)
}

/// What [`check_layout`] found in a valid layout.
#[derive(Debug)]
pub struct LayoutState {
    /// `(tag or "", digest)` of each index.json entry, in order.
    pub entries: Vec<(String, String)>,
    /// How many blobs were reached and verified.
    pub verified: usize,
}

impl LayoutState {
    /// The digest a tag points at.
    pub fn tagged(&self, tag: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, d)| d.as_str())
    }
}

/// Validates a layout independently of ocikit: `oci-layout` present,
/// `index.json` parses, and every blob reachable from it exists with the
/// digest and size its descriptor says.
pub fn check_layout(dir: &Path) -> Result<LayoutState, String> {
    let marker = std::fs::read(dir.join("oci-layout")).map_err(|e| format!("oci-layout: {e}"))?;
    serde_json::from_slice::<serde_json::Value>(&marker).map_err(|e| format!("oci-layout: {e}"))?;
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("index.json")).map_err(|e| format!("index.json: {e}"))?,
    )
    .map_err(|e| format!("index.json: {e}"))?;
    let top = index["manifests"]
        .as_array()
        .ok_or("index.json has no manifests list")?
        .clone();
    let entries = top
        .iter()
        .map(|m| {
            (
                m["annotations"][REF_NAME].as_str().unwrap_or("").to_owned(),
                m["digest"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = top;
    while let Some(descriptor) = stack.pop() {
        let digest = descriptor["digest"]
            .as_str()
            .ok_or("descriptor without digest")?;
        if !seen.insert(digest.to_owned()) {
            continue;
        }
        let bytes = std::fs::read(blob_path(dir, digest)).map_err(|e| format!("{digest}: {e}"))?;
        if sha256(&bytes) != digest {
            return Err(format!("{digest}: content hashes to {}", sha256(&bytes)));
        }
        if descriptor["size"].as_u64() != Some(bytes.len() as u64) {
            return Err(format!(
                "{digest}: size {} differs from its descriptor",
                bytes.len()
            ));
        }
        let media_type = descriptor["mediaType"].as_str().unwrap_or("");
        if media_type.ends_with("manifest.v1+json")
            || media_type.ends_with("index.v1+json")
            || media_type.ends_with("manifest.v2+json")
            || media_type.ends_with("list.v2+json")
        {
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("{digest}: {e}"))?;
            if body["config"].is_object() {
                stack.push(body["config"].clone());
            }
            for key in ["layers", "manifests"] {
                if let Some(list) = body[key].as_array() {
                    stack.extend(list.iter().cloned());
                }
            }
        }
    }
    Ok(LayoutState {
        entries,
        verified: seen.len(),
    })
}

/// Adds an index of `images` (each with its architecture, os linux) to the
/// layout at `dir`, tagged `tag`; returns its digest.
pub fn index_of(dir: &Path, tag: &str, images: &[(&Image, &str)]) -> String {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|(image, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.digest,
                "size": image.size,
                "platform": {"architecture": arch, "os": "linux"},
            })
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
    .to_string();
    let digest = put_blob(dir, body.as_bytes());
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index.json")).expect("json");
    let list = index["manifests"].as_array_mut().expect("manifests");
    list.retain(|m| m["annotations"][REF_NAME] != tag);
    list.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest,
        "size": body.len(),
        "annotations": {REF_NAME: tag},
    }));
    std::fs::write(&index_path, index.to_string()).expect("index.json");
    digest
}

/// Adds an OCI 1.1 artifact about `subject` (a manifest of the layout at
/// `dir`) to that layout, listed untagged in `index.json` as oci-sign and
/// oras list referrers: an empty config, one `payload` layer, `artifactType`
/// and one annotation. Returns its digest.
pub fn referrer_of(dir: &Path, subject: &str, artifact_type: &str, payload: &[u8]) -> String {
    let subject_size = std::fs::metadata(blob_path(dir, subject))
        .expect("the subject is in the layout")
        .len();
    let empty = put_blob(dir, b"{}");
    let layer = put_blob(dir, payload);
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": payload.len()}],
        "subject": {"mediaType": media_type_of(dir, subject), "digest": subject, "size": subject_size},
        "annotations": {"org.example.about": subject},
    })
    .to_string();
    let digest = put_blob(dir, body.as_bytes());
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index.json")).expect("json");
    index["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": body.len(),
        }));
    std::fs::write(&index_path, index.to_string()).expect("index.json");
    digest
}

/// The `mediaType` a manifest blob of the layout at `dir` declares.
fn media_type_of(dir: &Path, digest: &str) -> String {
    let body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(dir, digest)).expect("manifest"))
            .expect("manifest JSON");
    body["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_owned()
}

/// Stores `bytes` as a manifest blob of the layout at `dir` and tags it
/// `tag` (moving the tag if it exists); returns its digest. For hand-made
/// manifests: a hostile signature image, an artifact.
pub fn tag_manifest(dir: &Path, tag: &str, media_type: &str, bytes: &[u8]) -> String {
    let digest = put_blob(dir, bytes);
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index.json")).expect("json");
    let list = index["manifests"].as_array_mut().expect("manifests");
    list.retain(|m| m["annotations"][REF_NAME] != tag);
    list.push(serde_json::json!({
        "mediaType": media_type,
        "digest": digest,
        "size": bytes.len(),
        "annotations": {REF_NAME: tag},
    }));
    std::fs::write(&index_path, index.to_string()).expect("index.json");
    digest
}

/// A one-layer tar holding Debian's static busybox at `/bin/busybox`, for
/// images a real runtime runs; `None` without busybox (see [`crate::require`]).
pub fn busybox_layer() -> Option<Vec<u8>> {
    let busybox = crate::require("busybox")?;
    let binary = std::fs::read(&busybox).expect("reading busybox");
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    dir.set_mtime(0);
    dir.set_cksum();
    builder
        .append_data(&mut dir, "bin/", std::io::empty())
        .expect("tar dir");
    let mut file = tar::Header::new_ustar();
    file.set_size(binary.len() as u64);
    file.set_mode(0o755);
    file.set_mtime(0);
    file.set_cksum();
    builder
        .append_data(&mut file, "bin/busybox", binary.as_slice())
        .expect("tar entry");
    Some(builder.into_inner().expect("tar"))
}
