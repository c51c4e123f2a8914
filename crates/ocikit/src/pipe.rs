//! The pipe contract's JSON Lines: one object per image on stdout, read back
//! by the next tool when its image argument is `-`.
//!
//! Every tool writes [`ImageLine`]s and reads them with [`read_lines`], so the
//! shape is defined once. Tools add fields of their own (`signatures`,
//! `name`, …) through `extra`; the four contract fields are never dropped.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The longest stdin line accepted, so a runaway producer cannot make a tool
/// buffer without bound.
pub const MAX_LINE: usize = 1 << 20;

/// One image a tool produced or checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageLine {
    /// The image reference, in the transport syntax (`docker://…`, `oci:…`).
    pub image: String,
    /// The manifest (or index) digest the line is pinned to.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// A short image name (oci-build's image name) used by repository
    /// prefixes (`oci-copy - docker://reg/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields added by one tool and passed along by the others.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ImageLine {
    /// A line with the four contract fields.
    pub fn new(
        image: impl Into<String>,
        digest: Digest,
        media_type: impl Into<String>,
        size: u64,
    ) -> ImageLine {
        ImageLine {
            image: image.into(),
            digest,
            media_type: media_type.into(),
            size,
            name: None,
            extra: BTreeMap::new(),
        }
    }

    /// Writes the line and a newline. Flushes, so the next tool in a pipe sees
    /// each image as soon as it is done.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// Why one stdin line could not be used. The stream goes on past it.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// Reading stdin failed.
    #[error("reading standard input: {0}")]
    Io(#[from] io::Error),
    /// The line is not an image line.
    #[error(
        "stdin line {line}: not an image line ({reason}); expected JSON like \
         {{\"image\":\"docker://host/repo:tag\",\"digest\":\"sha256:…\",\"mediaType\":\"…\",\"size\":123}}"
    )]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What serde said.
        reason: String,
    },
    /// The line is over [`MAX_LINE`].
    #[error("stdin line {line}: longer than 1 MiB")]
    TooLong {
        /// 1-based line number.
        line: usize,
    },
}

/// Reads image lines, skipping blank ones. Each item is one line's result, so
/// a caller reports a bad line and carries on with the next.
pub fn read_lines<R: BufRead>(reader: R) -> impl Iterator<Item = Result<ImageLine, PipeError>> {
    let mut reader = reader;
    let mut number = 0;
    std::iter::from_fn(move || loop {
        number += 1;
        let mut buf = Vec::new();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf);
        match read {
            Err(err) => return Some(Err(PipeError::Io(err))),
            Ok(0) => return None,
            Ok(_) if buf.len() > MAX_LINE && !buf.ends_with(b"\n") => {
                // Drain the rest of the overlong line before going on.
                let mut rest = Vec::new();
                if let Err(err) = reader.read_until(b'\n', &mut rest) {
                    return Some(Err(PipeError::Io(err)));
                }
                return Some(Err(PipeError::TooLong { line: number }));
            }
            Ok(_) => {}
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Some(
            serde_json::from_slice(&buf).map_err(|err| PipeError::Malformed {
                line: number,
                reason: err.to_string(),
            }),
        );
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn writes_the_contract_fields_in_camel_case() {
        let mut line = ImageLine::new("oci:x:1", D.parse().expect("digest"), "m/t", 12);
        line.extra.insert("signatures".into(), serde_json::json!(2));
        let mut out = Vec::new();
        line.write_to(&mut out).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!("{{\"image\":\"oci:x:1\",\"digest\":\"{D}\",\"mediaType\":\"m/t\",\"size\":12,\"signatures\":2}}\n")
        );
    }

    #[test]
    fn reads_lines_and_reports_bad_ones_without_stopping() {
        let input = format!(
            "{{\"image\":\"a\",\"digest\":\"{D}\",\"mediaType\":\"m\",\"size\":1,\"name\":\"app\",\"x\":[1]}}\n\
             \n\
             not json\n\
             {{\"image\":\"b\",\"digest\":\"sha256:bad\",\"mediaType\":\"m\",\"size\":1}}\n\
             {{\"image\":\"c\",\"digest\":\"{D}\",\"mediaType\":\"m\",\"size\":3}}"
        );
        let results: Vec<_> = read_lines(input.as_bytes()).collect();
        assert_eq!(results.len(), 4);
        let first = results[0].as_ref().expect("first line");
        assert_eq!(first.name.as_deref(), Some("app"));
        assert_eq!(first.extra["x"], serde_json::json!([1]));
        let err = results[1].as_ref().expect_err("not json").to_string();
        assert!(err.starts_with("stdin line 3: not an image line"), "{err}");
        let err = results[2].as_ref().expect_err("bad digest").to_string();
        assert!(
            err.contains("line 4") && err.contains("64 lowercase hex"),
            "{err}"
        );
        assert_eq!(results[3].as_ref().expect("last").size, 3);
    }

    #[test]
    fn refuses_overlong_lines_and_goes_on() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(
            format!("{{\"image\":\"c\",\"digest\":\"{D}\",\"mediaType\":\"m\",\"size\":3}}\n")
                .as_bytes(),
        );
        let results: Vec<_> = read_lines(&input[..]).collect();
        assert!(matches!(results[0], Err(PipeError::TooLong { line: 1 })));
        assert_eq!(results[1].as_ref().expect("second").image, "c");
    }
}
