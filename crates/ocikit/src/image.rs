//! Building an image's config and manifest: the two JSON documents
//! oci-build writes after its layers, byte-for-byte reproducible.
//!
//! The bytes of a config decide the image's digest, so everything here is
//! deterministic: fields in a fixed order (the struct's), maps sorted,
//! `Env` in a fixed order (inherited variables where they were, new ones
//! after, sorted), and `created` and history from `SOURCE_DATE_EPOCH` rather
//! than the clock. A base image's config is read with unknown fields kept,
//! so building on it loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::{self, Descriptor};

/// An OCI image config (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was created (RFC 3339), from `SOURCE_DATE_EPOCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (GOARCH style).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (GOOS style).
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How a container of the image runs.
    #[serde(default)]
    pub config: RunConfig,
    /// The layers' diff_ids, bottom first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per build step, bottom first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The `config` part of an image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// The user the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports the image exposes (`"80/tcp": {}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Its default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Paths that are volumes (`"/data": {}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The layers' diff_ids.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Reads a config as stored (unknown fields kept).
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The config's bytes as stored: compact JSON in a fixed field order.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs, maps with string keys and JSON values
        // cannot fail; an empty document would be caught by the digest.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Sets `name=value` in `Env`: in place when the variable is inherited,
    /// appended otherwise.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let entry = format!("{name}={value}");
        let prefix = format!("{name}=");
        match self
            .config
            .env
            .iter_mut()
            .find(|e| e.starts_with(&prefix) || *e == name)
        {
            Some(existing) => *existing = entry,
            None => self.config.env.push(entry),
        }
    }

    /// Adds a layer: its diff_id and a history entry made at `created`.
    pub fn add_layer(&mut self, diff_id: Digest, created: &str, created_by: &str) {
        self.rootfs.diff_ids.push(diff_id);
        self.history.push(History {
            created: Some(created.to_owned()),
            created_by: Some(created_by.to_owned()),
            ..History::default()
        });
    }

    /// Adds a history entry for a step that made no layer.
    pub fn add_empty_history(&mut self, created: &str, created_by: &str) {
        self.history.push(History {
            created: Some(created.to_owned()),
            created_by: Some(created_by.to_owned()),
            empty_layer: true,
            ..History::default()
        });
    }
}

/// The bytes of an OCI image manifest for `config` and `layers`, with
/// `annotations` (sorted) when there are any.
pub fn manifest_bytes(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ImageManifest<'a> {
        schema_version: u32,
        media_type: &'static str,
        config: &'a Descriptor,
        layers: &'a [Descriptor],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: &'a BTreeMap<String, String>,
    }
    serde_json::to_vec(&ImageManifest {
        schema_version: 2,
        media_type: manifest::OCI_MANIFEST,
        config,
        layers,
        annotations,
    })
    .unwrap_or_default()
}

/// The bytes of an OCI image index over `manifests` (each descriptor with
/// its platform), in the order given: the multi-platform form of an image.
pub fn index_bytes(manifests: &[Descriptor]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ImageIndex<'a> {
        schema_version: u32,
        media_type: &'static str,
        manifests: &'a [Descriptor],
    }
    serde_json::to_vec(&ImageIndex {
        schema_version: 2,
        media_type: manifest::OCI_INDEX,
        manifests,
    })
    .unwrap_or_default()
}

/// `epoch` (seconds since 1970, UTC) as RFC 3339: `1970-01-01T00:00:00Z`.
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (epoch, want) in cases {
            assert_eq!(rfc3339(epoch), want);
        }
    }

    #[test]
    fn env_keeps_inherited_order_and_replaces_in_place() {
        let mut config = ImageConfig::default();
        config.config.env = vec!["PATH=/bin".into(), "HOME=/root".into()];
        config.set_env("LANG", "C");
        config.set_env("PATH", "/usr/bin:/bin");
        assert_eq!(
            config.config.env,
            ["PATH=/usr/bin:/bin", "HOME=/root", "LANG=C"]
        );
    }

    #[test]
    fn bytes_are_fixed_and_unknown_fields_survive() {
        let base = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Healthcheck":{"Test":["NONE"]},"Labels":{"z":"1","a":"2"}},"rootfs":{"type":"layers","diff_ids":[]},"os.version":"x"}"#;
        let mut config = ImageConfig::parse(base).expect("parse");
        config.created = Some(rfc3339(0));
        config.add_layer(Digest::sha256_of(b"layer"), &rfc3339(0), "oci-build");
        let bytes = config.to_bytes();
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.starts_with(r#"{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Labels":{"a":"2","z":"1"},"Healthcheck""#), "{text}");
        assert!(text.contains(r#""os.version":"x""#), "{text}");
        assert_eq!(ImageConfig::parse(&bytes).expect("again").to_bytes(), bytes);
        let layer = Descriptor::new(manifest::OCI_LAYER_GZIP, Digest::sha256_of(b"l"), 1);
        let cfg = Descriptor::new(
            manifest::OCI_CONFIG,
            Digest::sha256_of(&bytes),
            bytes.len() as u64,
        );
        let m = manifest_bytes(&cfg, &[layer], &BTreeMap::new());
        let parsed = manifest::Manifest::parse(&m, None).expect("a manifest");
        assert_eq!(parsed.media_type, manifest::OCI_MANIFEST);
        assert!(!String::from_utf8_lossy(&m).contains("annotations"));
    }
}
