//! Manifest format conversion between Docker v2s2 and OCI, the one place where
//! oci-copy rewrites a manifest (and so changes its digest).
//!
//! Only media types change (of the manifest, its config and its layers, or of
//! an index and its entries) plus, after recompression, layer digests and
//! sizes; the config bytes are kept as they are, as skopeo does. Rewritten
//! manifests are serialised compactly with sorted keys, so a conversion is
//! deterministic.

use serde_json::Value;

use crate::manifest::{self, Descriptor};

/// A manifest format a destination can be asked for (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest and index.
    Oci,
    /// Docker schema 2 manifest and manifest list.
    V2s2,
}

/// The OCI non-distributable gzip layer, what Docker's foreign layer becomes.
pub const OCI_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// The Docker uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The format a media type belongs to, if it is one of the manifest types.
pub fn format_of(media_type: &str) -> Option<Format> {
    match media_type {
        manifest::OCI_MANIFEST | manifest::OCI_INDEX => Some(Format::Oci),
        manifest::DOCKER_MANIFEST | manifest::DOCKER_MANIFEST_LIST => Some(Format::V2s2),
        _ => None,
    }
}

/// The media type of a manifest, config or layer in the other format, or why
/// it has none.
pub fn convert_media_type(media_type: &str, to: Format) -> Result<String, String> {
    let converted =
        match (to, media_type) {
            (Format::Oci, manifest::DOCKER_MANIFEST) => manifest::OCI_MANIFEST,
            (Format::Oci, manifest::DOCKER_MANIFEST_LIST) => manifest::OCI_INDEX,
            (Format::Oci, manifest::DOCKER_CONFIG) => manifest::OCI_CONFIG,
            (Format::Oci, manifest::DOCKER_LAYER_GZIP) => manifest::OCI_LAYER_GZIP,
            (Format::Oci, manifest::DOCKER_FOREIGN_LAYER_GZIP) => OCI_NONDISTRIBUTABLE_GZIP,
            (Format::Oci, DOCKER_LAYER_TAR) => manifest::OCI_LAYER_TAR,
            (Format::V2s2, manifest::OCI_MANIFEST) => manifest::DOCKER_MANIFEST,
            (Format::V2s2, manifest::OCI_INDEX) => manifest::DOCKER_MANIFEST_LIST,
            (Format::V2s2, manifest::OCI_CONFIG) => manifest::DOCKER_CONFIG,
            (Format::V2s2, manifest::OCI_LAYER_GZIP) => manifest::DOCKER_LAYER_GZIP,
            (Format::V2s2, OCI_NONDISTRIBUTABLE_GZIP) => manifest::DOCKER_FOREIGN_LAYER_GZIP,
            (Format::V2s2, manifest::OCI_LAYER_TAR) => DOCKER_LAYER_TAR,
            (Format::V2s2, manifest::OCI_LAYER_ZSTD) => return Err(
                "Docker v2s2 has no zstd layers (use --format oci, or --dest-compress-format gzip)"
                    .into(),
            ),
            (_, other) if format_of(other) == Some(to) => other,
            (Format::Oci, other) if other.starts_with("application/vnd.oci.") => other,
            (Format::V2s2, other) if other.starts_with("application/vnd.docker.") => other,
            (_, other) => {
                return Err(format!(
                    "media type {other:?} has no {} equivalent",
                    match to {
                        Format::Oci => "OCI",
                        Format::V2s2 => "Docker v2s2",
                    }
                ))
            }
        };
    Ok(converted.to_owned())
}

/// Rewrites an image manifest: its media type to `to` (if given), its config
/// media type, and its layers to `layers` (new digests, sizes and media
/// types after conversion or recompression), keeping every other field.
pub fn rewrite_image(
    bytes: &[u8],
    to: Option<Format>,
    layers: &[Descriptor],
) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| "the manifest is not a JSON object".to_owned())?;
    if let Some(to) = to {
        let current = object
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(manifest::OCI_MANIFEST)
            .to_owned();
        object.insert(
            "mediaType".into(),
            Value::from(convert_media_type(&current, to)?),
        );
        if let Some(config) = object.get_mut("config").and_then(Value::as_object_mut) {
            let media = config
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            config.insert(
                "mediaType".into(),
                Value::from(convert_media_type(&media, to)?),
            );
        }
    }
    let list = object
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| "the manifest has no layers list".to_owned())?;
    if list.len() != layers.len() {
        return Err("layer count changed during conversion".into());
    }
    for (entry, layer) in list.iter_mut().zip(layers) {
        let entry = entry
            .as_object_mut()
            .ok_or_else(|| "a layer descriptor is not an object".to_owned())?;
        entry.insert("mediaType".into(), Value::from(layer.media_type.clone()));
        entry.insert("digest".into(), Value::from(layer.digest.to_string()));
        entry.insert("size".into(), Value::from(layer.size));
    }
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

/// Rewrites an index: its media type to `to` (if given) and its entries to
/// `children` (each entry's media type, digest and size).
pub fn rewrite_index(
    bytes: &[u8],
    to: Option<Format>,
    children: &[Descriptor],
) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| "the index is not a JSON object".to_owned())?;
    if let Some(to) = to {
        let current = object
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(manifest::OCI_INDEX)
            .to_owned();
        object.insert(
            "mediaType".into(),
            Value::from(convert_media_type(&current, to)?),
        );
    }
    let list = object
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| "the index has no manifests list".to_owned())?;
    if list.len() != children.len() {
        return Err("entry count changed during conversion".into());
    }
    for (entry, child) in list.iter_mut().zip(children) {
        let entry = entry
            .as_object_mut()
            .ok_or_else(|| "an index entry is not an object".to_owned())?;
        entry.insert("mediaType".into(), Value::from(child.media_type.clone()));
        entry.insert("digest".into(), Value::from(child.digest.to_string()));
        entry.insert("size".into(), Value::from(child.size));
    }
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::manifest::Manifest;

    #[test]
    fn docker_to_oci_and_back() {
        let config = Digest::sha256_of(b"c");
        let layer = Digest::sha256_of(b"l");
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":1,"digest":"{config}"}},"layers":[{{"mediaType":"{}","size":1,"digest":"{layer}"}}]}}"#,
            manifest::DOCKER_MANIFEST,
            manifest::DOCKER_CONFIG,
            manifest::DOCKER_LAYER_GZIP
        );
        let parsed = Manifest::parse(docker.as_bytes(), None).expect("parse");
        let crate::manifest::ManifestKind::Image { layers, .. } = parsed.kind else {
            panic!("image")
        };
        let oci_layers: Vec<_> = layers
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.media_type = convert_media_type(&l.media_type, Format::Oci).expect("layer");
                l
            })
            .collect();
        let oci = rewrite_image(docker.as_bytes(), Some(Format::Oci), &oci_layers).expect("oci");
        let back = Manifest::parse(&oci, None).expect("parse oci");
        assert_eq!(back.media_type, manifest::OCI_MANIFEST);
        let crate::manifest::ManifestKind::Image {
            config: c,
            layers: l,
        } = back.kind
        else {
            panic!("image")
        };
        assert_eq!(c.media_type, manifest::OCI_CONFIG);
        assert_eq!(c.digest, config);
        assert_eq!(l[0].media_type, manifest::OCI_LAYER_GZIP);
        assert_eq!(l[0].digest, layer);
        assert_eq!(
            rewrite_image(docker.as_bytes(), Some(Format::Oci), &oci_layers).expect("again"),
            oci,
            "deterministic"
        );
    }

    #[test]
    fn refuses_what_has_no_equivalent() {
        let err = convert_media_type(manifest::OCI_LAYER_ZSTD, Format::V2s2).expect_err("zstd");
        assert!(err.contains("no zstd layers"), "{err}");
        let err = convert_media_type("application/x-custom", Format::Oci).expect_err("custom");
        assert!(err.contains("has no OCI equivalent"), "{err}");
        assert_eq!(
            convert_media_type(manifest::OCI_LAYER_ZSTD, Format::Oci).as_deref(),
            Ok(manifest::OCI_LAYER_ZSTD)
        );
    }
}
