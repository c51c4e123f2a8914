//! JSON exactly as Go's `encoding/json` writes it, for payloads that are signed.
//!
//! A signature covers bytes, so a payload written by ocikit should be the very
//! bytes cosign would write for the same claims: then a re-signed image gets an
//! identical payload (no duplicate layer), and fixtures from cosign compare
//! byte for byte. Go's encoder differs from serde_json's compact output in two
//! ways that matter: it escapes `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`,
//! `\u003e`, `\u0026`, `\u2028`, `\u2029` (HTML safety), and it writes map keys
//! sorted (struct fields keep their declared order, which a Rust struct does
//! too). Control characters already agree (`\n`, `\u001f`, … and, as since Go
//! 1.22, `\b` and `\f`).

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// A compact serde_json formatter that escapes strings as Go does.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serialises `value` as Go's `json.Marshal` would: compact, HTML-escaped.
/// Maps must already be sorted (use `BTreeMap`, or wrap a `Value` in
/// [`Sorted`]).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// A `serde_json::Value` serialised with its object keys sorted, as Go
/// writes a `map[string]interface{}`, whatever serde_json's `preserve_order`
/// feature says.
#[derive(Debug, Clone, Copy)]
pub struct Sorted<'a>(pub &'a serde_json::Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Object(map) => SortedMap(map).serialize(s),
            Value::Array(items) => s.collect_seq(items.iter().map(Sorted)),
            other => other.serialize(s),
        }
    }
}

/// A JSON object serialised with sorted keys (see [`Sorted`]).
#[derive(Debug, Clone, Copy)]
pub struct SortedMap<'a>(pub &'a serde_json::Map<String, serde_json::Value>);

impl Serialize for SortedMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<&String, Sorted<'_>> =
            self.0.iter().map(|(k, v)| (k, Sorted(v))).collect();
        sorted.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_like_go() {
        let cases: &[(serde_json::Value, &str)] = &[
            (json!("a<b>&c"), r#""a\u003cb\u003e\u0026c""#),
            (
                json!("line\nsep\u{2028}para\u{2029}"),
                r#""line\nsep\u2028para\u2029""#,
            ),
            (json!("quote\" back\\ tab\t"), r#""quote\" back\\ tab\t""#),
            (json!("\u{1f}\u{8}\u{c}"), r#""\u001f\b\f""#),
            (json!("héllo ✓"), "\"héllo ✓\""),
            (
                json!({"b": 1, "a": [true, null]}),
                r#"{"a":[true,null],"b":1}"#,
            ),
        ];
        for (value, want) in cases {
            let got = String::from_utf8(to_vec(&Sorted(value)).unwrap()).unwrap();
            assert_eq!(&got, want, "for {value}");
        }
    }
}
