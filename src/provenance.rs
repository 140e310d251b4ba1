//! The manifest hash recorded in every artifact's `provenance` block.
//!
//! The hash must equal the reference tool's byte for byte, otherwise artifacts from the
//! two implementations could not be cross-checked. The reference hashes an RFC 8785
//! (JCS) rendering of a small fixed projection; because that projection only ever holds
//! strings, arrays of strings and objects with known keys, we write the canonical text
//! directly instead of pulling in a general JCS implementation (whose number formatting
//! we would never exercise).

use sha2::{Digest, Sha256};

/// Capability grammar version written into provenance; it changes only when the
/// meaning of capability strings changes, not with capgate releases.
pub const GRAMMAR_VERSION: &str = "0.0";

/// Names the canonicalisation scheme so a verifier knows how to recompute the hash.
pub const CANONICALIZATION: &str = "RFC8785";

/// One tool as it enters the hash: its name and its raw capability strings.
///
/// Raw strings (not the parsed form) are hashed so that the hash identifies exactly what
/// the author wrote, independent of how capgate's normaliser treats it.
pub struct ToolProjection<'a, S: AsRef<str> = String> {
    pub name: &'a str,
    pub capabilities: &'a [S],
}

/// `"sha256:" + lowercase hex` of the RFC 8785 (JCS) canonical form of the projection.
///
/// The caller passes an empty slice when `serverCapabilities` is absent or `null`,
/// because the reference treats all three cases as `[]`.
pub fn manifest_hash<S: AsRef<str>>(
    name: &str,
    version: &str,
    server_capabilities: &[S],
    tools: &[ToolProjection<'_, S>],
) -> String {
    let canonical = canonical_projection(name, version, server_capabilities, tools);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The canonical JSON text that is hashed (exposed for tests and `explain`).
///
/// JCS sorts object keys by UTF-16 code units. The keys here are fixed ASCII, so that
/// order is written out by hand: `name < serverCapabilities < tools < version` at the
/// top level and `capabilities < name` inside each tool (a test re-derives it).
pub fn canonical_projection<S: AsRef<str>>(
    name: &str,
    version: &str,
    server_capabilities: &[S],
    tools: &[ToolProjection<'_, S>],
) -> String {
    let mut out = String::new();
    out.push_str("{\"name\":");
    write_string(&mut out, name);
    out.push_str(",\"serverCapabilities\":");
    write_string_array(&mut out, server_capabilities);
    out.push_str(",\"tools\":[");
    for (i, tool) in tools.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"capabilities\":");
        write_string_array(&mut out, tool.capabilities);
        out.push_str(",\"name\":");
        write_string(&mut out, tool.name);
        out.push('}');
    }
    out.push_str("],\"version\":");
    write_string(&mut out, version);
    out.push('}');
    out
}

fn write_string_array<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, item.as_ref());
    }
    out.push(']');
}

/// JCS string escaping (the same as ECMAScript `JSON.stringify`): only `"`, `\` and
/// C0 controls are escaped. `/`, U+007F and non-ASCII stay literal; escaping any of
/// them would change the hash.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Most strings need no escape at all: copy them whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0x0f] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn known_answer() {
        let caps = strings(&["fs:read:/x"]);
        let tools = [ToolProjection {
            name: "t",
            capabilities: &caps,
        }];
        assert_eq!(
            canonical_projection("srv", "1.0.0", &[], &tools),
            concat!(
                r#"{"name":"srv","serverCapabilities":[],"#,
                r#""tools":[{"capabilities":["fs:read:/x"],"name":"t"}],"version":"1.0.0"}"#
            )
        );
        assert_eq!(
            manifest_hash("srv", "1.0.0", &[], &tools),
            "sha256:ed84115385089df118983e03900f9b6c473327cb48a663ca6d824a8cd3a5f807"
        );
    }

    #[test]
    fn string_escaping() {
        let s = "q\" b\\ c\u{01} n\n s/ e\u{e9} d\u{7F} \u{08}\u{0C}\r\t\u{1F}\u{1F600}";
        let caps = vec![s.to_owned()];
        let text = canonical_projection(s, "v", &caps, &[]);
        let expected =
            "\"q\\\" b\\\\ c\\u0001 n\\n s/ e\u{e9} d\u{7F} \\b\\f\\r\\t\\u001f\u{1F600}\"";
        assert_eq!(
            text,
            format!(
                "{{\"name\":{expected},\"serverCapabilities\":[{expected}],{}",
                "\"tools\":[],\"version\":\"v\"}"
            )
        );
        // The escaped text is valid JSON that round-trips to the original string.
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["name"], s);
    }

    #[test]
    fn key_order_is_utf16_sorted() {
        // Guards the hand-written key order against a future key being added out of place.
        let by_utf16 = |keys: &mut Vec<&str>| {
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        };
        let mut top = vec!["version", "tools", "serverCapabilities", "name"];
        by_utf16(&mut top);
        assert_eq!(top, ["name", "serverCapabilities", "tools", "version"]);
        let mut tool = vec!["name", "capabilities"];
        by_utf16(&mut tool);
        assert_eq!(tool, ["capabilities", "name"]);

        let caps = strings(&["a"]);
        let tools = [ToolProjection {
            name: "t",
            capabilities: &caps,
        }];
        let text = canonical_projection("n", "v", &caps, &tools);
        let positions: Vec<usize> = [
            "\"name\"",
            "\"serverCapabilities\"",
            "\"tools\"",
            "\"version\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn tool_order_matters() {
        let a = strings(&["fs:read:/a"]);
        let b = strings(&["fs:read:/b"]);
        let ab = [
            ToolProjection {
                name: "a",
                capabilities: &a,
            },
            ToolProjection {
                name: "b",
                capabilities: &b,
            },
        ];
        let ba = [
            ToolProjection {
                name: "b",
                capabilities: &b,
            },
            ToolProjection {
                name: "a",
                capabilities: &a,
            },
        ];
        assert_ne!(
            manifest_hash("s", "1", &[], &ab),
            manifest_hash("s", "1", &[], &ba)
        );
    }

    /// Recomputes the hash of a reference manifest the way the compiler will: only the
    /// projected fields, with absent or `null` `serverCapabilities` treated as `[]`.
    fn fixture_hash(manifest: &serde_json::Value) -> String {
        let as_strings = |v: &serde_json::Value| -> Vec<String> {
            match v {
                serde_json::Value::Null => Vec::new(),
                v => v
                    .as_array()
                    .expect("capabilities array")
                    .iter()
                    .map(|c| c.as_str().expect("capability string").to_owned())
                    .collect(),
            }
        };
        let server = as_strings(&manifest["serverCapabilities"]);
        let tools = manifest["tools"].as_array().expect("tools array");
        let tool_caps: Vec<Vec<String>> = tools
            .iter()
            .map(|t| as_strings(&t["capabilities"]))
            .collect();
        let projections: Vec<ToolProjection<'_>> = tools
            .iter()
            .zip(&tool_caps)
            .map(|(t, caps)| ToolProjection {
                name: t["name"].as_str().expect("tool name"),
                capabilities: caps,
            })
            .collect();
        manifest_hash(
            manifest["name"].as_str().expect("name"),
            manifest["version"].as_str().expect("version"),
            &server,
            &projections,
        )
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference");

    fn read_json(path: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn reference_fixtures() {
        for name in ["fetch", "filesystem", "github", "puppeteer"] {
            let manifest = read_json(&format!("{FIXTURES}/manifests/{name}.json"));
            let policy = read_json(&format!("{FIXTURES}/policies/bwrap/{name}.json"));
            let expected = policy["provenance"]["manifestHash"]
                .as_str()
                .expect("manifestHash");
            assert_eq!(fixture_hash(&manifest), expected, "fixture {name}");
            assert_eq!(policy["provenance"]["grammarVersion"], GRAMMAR_VERSION);
            assert_eq!(policy["provenance"]["canonicalization"], CANONICALIZATION);
        }
    }

    #[test]
    fn absent_null_and_empty_server_capabilities_hash_alike() {
        // github.json has no serverCapabilities key at all.
        let mut manifest = read_json(&format!("{FIXTURES}/manifests/github.json"));
        assert!(manifest.get("serverCapabilities").is_none());
        let absent = fixture_hash(&manifest);
        manifest["serverCapabilities"] = serde_json::Value::Null;
        let null = fixture_hash(&manifest);
        manifest["serverCapabilities"] = serde_json::json!([]);
        let empty = fixture_hash(&manifest);
        assert_eq!(absent, null);
        assert_eq!(absent, empty);
    }
}
