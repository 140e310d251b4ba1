//! `capgate schema`: a JSON Schema (draft 2020-12) of the manifest, for editors.
//!
//! The shape (objects, required keys, types) is exact. Capabilities get one
//! regular expression per kind that approximates the grammar
//! (grammar/capability.pest): every string capgate accepts matches, and most
//! mistakes do not. Where a pattern is looser than capgate is listed in
//! [`LOOSER`] and in docs/schema.md; `tests/schema.rs` validates every fixture
//! and the error corpus against the schema with a JSON Schema validator.
//!
//! The patterns use only what ECMA-262, Rust's `fancy-regex` and Python's `re`
//! read alike: classes, groups, alternation, counted repetition and negative
//! lookahead. Invisible characters are written literally inside classes.

use serde_json::{json, Value};

use crate::provenance::GRAMMAR_VERSION;
use crate::syntax::{DANGEROUS_ENV, ENGINE_SOCKETS};

/// Where the schema accepts a capability that capgate refuses (documented in docs/schema.md).
pub const LOOSER: &[(&str, &str)] = &[
    ("CAP_NET_HOST_SPECIAL", "IPv6 addresses that can never be granted (`::`, IPv4-mapped, -compatible and -translated, NAT64, multicast) have too many spellings for a pattern; the IPv4 ones (0.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4) are refused"),
    ("CAP_NET_HOST", "the exact IPv6 form (the pattern takes hex digits, `:` and `.` with at least one `:`)"),
    ("CAP_FS_RESERVED", "host aliases (`/var/run` is `/run`) and container-engine locations with every directory above them (`/run`, `/var/lib`) are checked on the mapped path; the pattern refuses the reserved roots and engine socket file names only"),
    ("CAP_IPC_SOCKET", "the same for `unix:` endpoints: engine directories (`/run/containerd`), their parents and aliases are checked on the mapped path; the pattern refuses engine socket file names and globs"),
    ("CAP_TOO_LONG", "maxLength counts characters, capgate counts 4096 bytes"),
    ("MANIFEST_DUPLICATE_KEY", "a JSON Schema sees the parsed object, in which a duplicate key is already gone"),
    ("MANIFEST_TOO_LARGE", "size limits of the file and its nesting"),
    ("INPUT_JSON", "strict JSON (no BOM, no lone surrogates) is checked before any schema applies"),
];

/// Characters refused anywhere in a capability (CAP_CHAR), as ranges:
/// [`crate::diag::is_invisible`] written out.
const INVISIBLE: &[(char, char)] = &[
    ('\u{0}', '\u{1f}'),
    ('\u{7f}', '\u{9f}'),
    ('\u{ad}', '\u{ad}'),
    ('\u{34f}', '\u{34f}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{115f}', '\u{1160}'),
    ('\u{17b4}', '\u{17b5}'),
    ('\u{180b}', '\u{180f}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{206f}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{fe00}', '\u{fe0f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{ffa0}', '\u{ffa0}'),
    ('\u{fff0}', '\u{fffb}'),
    ('\u{e0000}', '\u{e007f}'),
];

/// The invisible characters as the body of a character class.
fn invisible_class() -> String {
    let mut s = String::new();
    for &(a, b) in INVISIBLE {
        let esc = |c: char| {
            if c.is_ascii() {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        };
        s.push_str(&esc(a));
        if a != b {
            s.push('-');
            s.push_str(&esc(b));
        }
    }
    s
}

/// A comma-separated action list of the given names, spaces allowed around items.
fn actions(names: &str) -> String {
    format!(" *(?:{names}) *(?:, *(?:{names}) *)*")
}

/// `X` or `"X"`.
fn maybe_quoted(x: &str) -> String {
    format!("(?:{x}|\"{x}\")")
}

/// A path segment: the fs allowlist, not `.` or `..`.
const SEG: &str = r#"(?!\.\.?(?:/|$|"))[A-Za-z0-9._+@~-]+"#;
/// Not the host's kernel and device trees.
const NOT_RESERVED: &str = r#"(?!/(?:proc|sys|dev)(?:/|$|"))"#;
const PORT: &str =
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

fn fs_pattern() -> String {
    let path = format!(r"{NOT_RESERVED}/{SEG}(?:/{SEG})*(?:/\*\*?)?");
    format!(
        "^fs:{}:{}$",
        actions("read|write|create|delete"),
        maybe_quoted(&path)
    )
}

fn net_pattern() -> String {
    // A label: letters and digits with inner hyphens, at most 63 characters.
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    // Where a host ends: the port, the closing quote or the end.
    let end = r#"(?:[:"]|$)"#;
    // A name whose last label is not all digits (resolvers read `10.1` as an address).
    let dns = format!(r"(?:{label}\.)*(?![0-9]+{end}){label}");
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    // 0.0.0.0/8, multicast and 240.0.0.0/4 can never be granted.
    let ipv4 = format!(r"(?!(?:0|22[4-9]|2[3-5][0-9])\.){octet}(?:\.{octet}){{3}}(?={end})");
    // A name is at most 253 characters.
    let bare = format!(r#"(?![^:"]{{254}})(?:\*|\*\.{dns}|{ipv4}|{dns})"#);
    let ipv6 = "[0-9A-Fa-f]*:[0-9A-Fa-f:.]*";
    format!(
        "^net:{}:(?:{bare}|\"(?:{bare}|{ipv6})\")(?::{PORT})?$",
        actions("connect")
    )
}

fn exec_pattern() -> String {
    let program = "[A-Za-z0-9_][A-Za-z0-9._+-]*";
    format!(
        r"^exec:{}:{}(?:\?nestedSandbox=(?:true|false|1|0))?$",
        actions("spawn"),
        maybe_quoted(program)
    )
}

fn env_pattern() -> String {
    let join = |prefix: bool| {
        DANGEROUS_ENV
            .iter()
            .filter(|d| d.prefix == prefix)
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join("|")
    };
    let (prefixes, names) = (join(true), join(false));
    let name = "[A-Z_][A-Z0-9_]*";
    format!(
        "^env:{}:(?!\"?(?:{prefixes}|(?:{names})\"?$)){}$",
        actions("read|inject"),
        maybe_quoted(name)
    )
}

fn ipc_pattern() -> String {
    let engines = ENGINE_SOCKETS
        .iter()
        .map(|s| s.replace('.', r"\."))
        .collect::<Vec<_>>()
        .join("|");
    // At least two levels deep, no glob, not an engine socket.
    let socket = format!(
        r#"unix:{NOT_RESERVED}(?![^"]*/(?:{engines})(?:$|")){}"#,
        format_args!("/{SEG}/{SEG}(?:/{SEG})*")
    );
    let endpoint = format!("(?:x11|dbus:session|dbus:system|{socket})");
    format!("^ipc:{}:{}$", actions("connect"), maybe_quoted(&endpoint))
}

fn clock_pattern() -> String {
    format!("^clock:{}$", maybe_quoted("(?:system|tzdata)"))
}

fn assert_pattern() -> String {
    let inv = invisible_class();
    let id = "[A-Za-z0-9_][A-Za-z0-9._-]*";
    // Description parts: quoted (may hold `:` and `?`) or bare (no `:`, `"` or `?`).
    format!(
        "^assert:{}(?::(?:\"[^\"{inv}]*\"|[^:\"?{inv}]*))*$",
        maybe_quoted(id)
    )
}

/// One `$defs` entry per kind: pattern, description and examples.
fn kind_def(kind: &str, pattern: String, description: &str, examples: &[&str]) -> (String, Value) {
    (
        kind.to_owned(),
        json!({
            "type": "string",
            "pattern": pattern,
            "description": description,
            "examples": examples,
        }),
    )
}

/// The whole schema.
pub fn schema() -> Value {
    let kinds = [
        kind_def(
            "fs",
            fs_pattern(),
            "fs:<read|write|create|delete,...>:<absolute path>[/*|/**]",
            &["fs:read:/workspace/**", "fs:read,write:/srv/data", "fs:read:/workspace/src/*"],
        ),
        kind_def(
            "net",
            net_pattern(),
            "net:connect:<host>[:<port>]; host: a DNS name, *.name, an IPv4 literal, a quoted IPv6 literal, or *",
            &["net:connect:api.github.com:443", "net:connect:*.githubusercontent.com:443", "net:connect:\"2606:4700:4700::1111\":853"],
        ),
        kind_def(
            "exec",
            exec_pattern(),
            "exec:spawn:<program basename>[?nestedSandbox=true]",
            &["exec:spawn:git", "exec:spawn:chromium?nestedSandbox=true"],
        ),
        kind_def(
            "env",
            env_pattern(),
            "env:<read|inject>:<UPPER_SNAKE name> (loader- and proxy-changing names are refused)",
            &["env:inject:GITHUB_TOKEN", "env:read:LANG"],
        ),
        kind_def(
            "ipc",
            ipc_pattern(),
            "ipc:connect:<x11 | dbus:session | dbus:system | unix:/path/to.sock>",
            &["ipc:connect:x11", "ipc:connect:\"dbus:session\"", "ipc:connect:\"unix:/run/app/app.sock\""],
        ),
        kind_def(
            "clock",
            clock_pattern(),
            "clock:<system|tzdata>",
            &["clock:system", "clock:tzdata"],
        ),
        kind_def(
            "assert",
            assert_pattern(),
            "assert:<id>[:<description>]; quote a description that holds `:` or `?`",
            &["assert:db.readonly:\"read-only: BEGIN READ ONLY on every transaction\""],
        ),
    ];
    let any_of: Vec<Value> = kinds
        .iter()
        .map(|(k, _)| json!({ "$ref": format!("#/$defs/{k}") }))
        .collect();
    let mut defs = serde_json::Map::new();
    defs.insert(
        "capability".into(),
        json!({
            "type": "string",
            "description": "A capability: <kind>:<actions>:<scope>[?<refinement>] (docs/capabilities.md).",
            "minLength": 1,
            "maxLength": 4096,
            "anyOf": any_of,
        }),
    );
    defs.insert(
        "tool".into(),
        json!({
            "type": "object",
            "description": "One tool of the server and the capabilities it needs.",
            "required": ["name", "capabilities"],
            "properties": {
                "name": { "type": "string", "minLength": 1 },
                "capabilities": {
                    "type": "array",
                    "items": { "$ref": "#/$defs/capability" }
                }
            }
        }),
    );
    for (k, v) in kinds {
        defs.insert(k, v);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:capgate:manifest:{GRAMMAR_VERSION}"),
        "title": "capgate manifest",
        "description": "An MCP server's capability manifest, compiled by capgate into sandbox policies (docs/capabilities.md). Generated by `capgate schema`; docs/schema.md lists where it is looser than capgate.",
        "type": "object",
        "required": ["name", "version", "tools"],
        "properties": {
            "name": { "type": "string", "minLength": 1, "description": "The server's name." },
            "version": { "type": "string", "minLength": 1, "description": "The server's version." },
            "grammar": { "const": GRAMMAR_VERSION, "description": "The capability grammar version." },
            "serverCapabilities": {
                "description": "Capabilities every tool of the server has.",
                "anyOf": [
                    { "type": "null" },
                    { "type": "array", "items": { "$ref": "#/$defs/capability" } }
                ]
            },
            "tools": {
                "type": "array",
                "items": { "$ref": "#/$defs/tool" }
            }
        },
        "$defs": defs,
    })
}

/// The schema as printed by `capgate schema`: 2-space indent, trailing newline,
/// and pure ASCII (every other character as a JSON `\uXXXX` escape), so the
/// invisible characters of the patterns stay visible in files and reviews.
pub fn to_string() -> String {
    let text = serde_json::to_string_pretty(&schema()).expect("schema serialises");
    let mut s = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if c.is_ascii() {
            s.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                s.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_ranges_are_is_invisible() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let listed = INVISIBLE.iter().any(|&(a, b)| (a..=b).contains(&c));
            assert_eq!(listed, crate::diag::is_invisible(c), "U+{:04X}", c as u32);
        }
    }
}
