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
