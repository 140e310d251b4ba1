//! Stage 1: manifest JSON → [`Manifest`], checking the shape and keeping the
//! source position of every capability string.
//!
//! The checks and their messages follow the reference tool (SPEC §2), with two
//! deliberate differences: every shape error is reported (not only the first),
//! and a falsy non-array `serverCapabilities` is a MANIFEST_SHAPE error instead
//! of a crash. Duplicate keys in the objects capgate reads are refused, because
//! JSON parsers disagree on which duplicate wins.

use std::fmt::Display;
use std::io::Read;

use crate::diag::{Code, Diagnostic};
use crate::json::{self, Member, Node, Value};
use crate::provenance::{self, ToolProjection};
pub use crate::source::Source;

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// A capability string as written, with the byte offset of its JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCap {
    pub text: String,
    pub offset: usize,
}

/// One tool of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub capabilities: Vec<RawCap>,
}

/// A shape-checked manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub server_capabilities: Vec<RawCap>,
    pub tools: Vec<Tool>,
}

impl Manifest {
    /// The reference-compatible `sha256:` hash of the manifest's projection (SPEC §6).
    /// Capabilities declared in all, server and tools.
    pub fn capability_count(&self) -> usize {
        self.server_capabilities.len()
            + self
                .tools
                .iter()
                .map(|t| t.capabilities.len())
                .sum::<usize>()
    }

    pub fn hash(&self) -> String {
        // Borrowed, not cloned: a large manifest has tens of thousands of strings.
        let server: Vec<&str> = self
            .server_capabilities
            .iter()
            .map(|c| c.text.as_str())
            .collect();
        let caps: Vec<Vec<&str>> = self
            .tools
            .iter()
            .map(|t| t.capabilities.iter().map(|c| c.text.as_str()).collect())
            .collect();
        let tools: Vec<ToolProjection<'_, &str>> = self
            .tools
            .iter()
            .zip(&caps)
            .map(|(t, c)| ToolProjection {
                name: &t.name,
                capabilities: c,
            })
            .collect();
        provenance::manifest_hash(&self.name, &self.version, &server, &tools)
    }
}

/// Reads a manifest, but never more than [`MAX_MANIFEST_BYTES`] + 1 bytes:
/// one byte over the limit is enough for [`load`] to refuse it with
/// `MANIFEST_TOO_LARGE`, so `/dev/zero`, an endless pipe or a huge file cost
/// at most the limit in memory and time.
pub fn read_bounded(mut reader: impl Read, size_hint: u64) -> std::io::Result<Vec<u8>> {
    // The whole limit is reserved when the size is unknown (stdin, FIFOs,
    // devices): untouched pages cost nothing, and the buffer never doubles
    // past the limit while the last byte is read.
    let limit = MAX_MANIFEST_BYTES as u64 + 1;
    let cap = if size_hint == 0 {
        limit
    } else {
        limit.min(size_hint + 1)
    };
    let mut buf = Vec::with_capacity(cap as usize);
    reader.by_ref().take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// [`read_bounded`] of a file path (FIFOs and character devices included).
pub fn read_file_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_bounded(file, hint)
}

/// Parses and shape-checks a manifest.
pub fn load(source: &Source, bytes: &[u8]) -> Result<Manifest, Vec<Diagnostic>> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(vec![Diagnostic::new(
            Code::ManifestTooLarge,
            format!(
                "manifest is larger than the limit of {} MiB ({} bytes); reading stopped there",
                MAX_MANIFEST_BYTES >> 20,
                MAX_MANIFEST_BYTES
            ),
        )]);
    }
    let mut root = json::parse(bytes).map_err(|e| {
        vec![Diagnostic::new(
            Code::InputJson,
            format!("failed to parse manifest: {}", e.message),
        )
        .at(source.location(e.offset))]
    })?;
    Shape {
        source,
        errors: Vec::new(),
    }
    .manifest(&mut root)
}

/// `tools[i]` and a field after it, formatted only when an error needs it.
struct ToolField(usize, &'static str);

impl Display for ToolField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tools[{}]{}", self.0, self.1)
    }
}

struct Shape<'s> {
    source: &'s Source,
    errors: Vec<Diagnostic>,
}

/// JavaScript truthiness, which the reference uses for `serverCapabilities`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.parse::<f64>().is_ok_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

impl Shape<'_> {
    fn error(&mut self, code: Code, offset: usize, message: String) {
        self.errors
            .push(Diagnostic::new(code, message).at(self.source.location(offset)));
    }

    /// The index of a key's member, reporting duplicates of it.
    fn find(&mut self, members: &[Member], key: &str, what: &dyn Display) -> Option<usize> {
        let mut found = None;
        for (i, m) in members.iter().enumerate().filter(|(_, m)| m.key == key) {
            if found.is_some() {
                self.error(
                    Code::ManifestDuplicateKey,
                    m.key_span.start,
                    format!("{what}.{key} is given more than once"),
                );
            } else {
                found = Some(i);
            }
        }
        found
    }

    /// Looks up a key, reporting duplicates of it.
    fn get<'n>(
        &mut self,
        members: &'n mut [Member],
        key: &str,
        what: &dyn Display,
    ) -> Option<&'n mut Node> {
        let i = self.find(members, key, what)?;
        Some(&mut members[i].value)
    }

    // Strings are moved out of the tree, which is dropped after shaping.
    fn nonempty_string(
        &mut self,
        node: Option<&mut Node>,
        at: usize,
        what: &dyn Display,
    ) -> String {
        match node {
            Some(Node {
                value: Value::String(s),
                ..
            }) if !s.is_empty() => std::mem::take(s),
            _ => {
                let offset = node.map_or(at, |n| n.span.start);
                self.error(
                    Code::ManifestShape,
                    offset,
                    format!("{what} must be a non-empty string"),
                );
                String::new()
            }
        }
    }

    fn strings(&mut self, items: &mut [Node], what: &dyn Display) -> Vec<RawCap> {
        let mut out = Vec::with_capacity(items.len());
        for (j, item) in items.iter_mut().enumerate() {
            match &mut item.value {
                Value::String(s) => out.push(RawCap {
                    text: std::mem::take(s),
                    offset: item.span.start,
                }),
                _ => self.error(
                    Code::ManifestShape,
                    item.span.start,
                    format!("{what}[{j}] must be a string"),
                ),
            }
        }
        out
    }

    fn manifest(mut self, root: &mut Node) -> Result<Manifest, Vec<Diagnostic>> {
        let Value::Object(members) = &mut root.value else {
            self.error(
                Code::ManifestShape,
                root.span.start,
                "manifest must be an object".to_owned(),
            );
            return Err(self.errors);
        };
        let at = root.span.start;
        if let Some(g) = self.get(members, "grammar", &"manifest") {
            match &g.value {
                Value::String(s) if s == provenance::GRAMMAR_VERSION => {}
                Value::String(s) => {
                    self.error(
                        Code::GrammarVersionMismatch,
                        g.span.start,
                        format!(
                            "manifest declares grammar {} but compiler is at \"{}\"",
                            crate::diag::quote(s),
                            provenance::GRAMMAR_VERSION
                        ),
                    );
                    // Capabilities of another grammar version may mean something else: stop.
                    return Err(self.errors);
                }
                _ => self.error(
                    Code::ManifestShape,
                    g.span.start,
                    "manifest.grammar must be a string".to_owned(),
                ),
            }
        }
        let name = self.get(members, "name", &"manifest");
        let name = self.nonempty_string(name, at, &"manifest.name");
        let version = self.get(members, "version", &"manifest");
        let version = self.nonempty_string(version, at, &"manifest.version");

        // The tool list is checked now (errors come in manifest order) but taken apart last.
        let tools_at = self.find(members, "tools", &"manifest");
        let tools_ok = match tools_at.map(|i| &members[i].value) {
            Some(Node {
                value: Value::Array(_),
                ..
            }) => true,
            other => {
                let offset = other.map_or(at, |n| n.span.start);
                self.error(
                    Code::ManifestShape,
                    offset,
                    "manifest.tools must be an array".to_owned(),
                );
                false
            }
        };

        let server_capabilities = match self.get(members, "serverCapabilities", &"manifest") {
            None => Vec::new(),
            Some(Node {
                value: Value::Null, ..
            }) => Vec::new(),
            Some(Node {
                value: Value::Array(items),
                ..
            }) => self.strings(items, &"serverCapabilities"),
            Some(n) => {
                let message = if truthy(&n.value) {
                    "manifest.serverCapabilities must be an array".to_owned()
                } else {
                    format!(
                        "manifest.serverCapabilities must be an array or null, not a falsy {}",
                        n.value.type_name()
                    )
                };
                self.error(Code::ManifestShape, n.span.start, message);
                Vec::new()
            }
        };

        let tool_items = match tools_at.map(|i| &mut members[i].value.value) {
            Some(Value::Array(items)) if tools_ok => items.as_mut_slice(),
            _ => &mut [],
        };
        let mut tools = Vec::with_capacity(tool_items.len());
        for (i, item) in tool_items.iter_mut().enumerate() {
            let Value::Object(tm) = &mut item.value else {
                self.error(
                    Code::ManifestShape,
                    item.span.start,
                    format!("tools[{i}] must be an object"),
                );
                continue;
            };
            let what = ToolField(i, "");
            let n = self.get(tm, "name", &what);
            let tool_name = self.nonempty_string(n, item.span.start, &ToolField(i, ".name"));
            let caps = match self.get(tm, "capabilities", &what) {
                Some(Node {
                    value: Value::Array(items),
                    ..
                }) => self.strings(items, &ToolField(i, ".capabilities")),
                other => {
                    let offset = other.map_or(item.span.start, |n| n.span.start);
                    self.error(
                        Code::ManifestShape,
                        offset,
                        format!("tools[{i}].capabilities must be an array"),
                    );
                    Vec::new()
                }
            };
            tools.push(Tool {
                name: tool_name,
                capabilities: caps,
            });
        }

        if self.errors.is_empty() {
            Ok(Manifest {
                name,
                version,
                server_capabilities,
                tools,
            })
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Manifest, Vec<(Code, String, usize, usize)>> {
        let source = Source::new("m.json", text.as_bytes());
        load(&source, text.as_bytes()).map_err(|ds| {
            ds.into_iter()
                .map(|d| {
                    let l = d.location.unwrap();
                    (d.code, d.message, l.line, l.column)
                })
                .collect()
        })
    }

    #[test]
    fn minimal_manifest() {
        let m = check(r#"{"name":"srv","version":"1.0.0","tools":[{"name":"t","capabilities":["fs:read:/x"]}]}"#)
            .unwrap();
        assert_eq!(m.tools[0].capabilities[0].text, "fs:read:/x");
        assert_eq!(m.tools[0].capabilities[0].offset, 69);
        assert_eq!(
            m.hash(),
            "sha256:ed84115385089df118983e03900f9b6c473327cb48a663ca6d824a8cd3a5f807"
        );
    }

    #[test]
    fn all_shape_errors_are_reported_with_locations() {
        let errs = check("{\"name\": \"\",\n \"version\": 1,\n \"tools\": [[], {\"name\": \"t\", \"capabilities\": [1]}]}")
            .unwrap_err();
        let msgs: Vec<_> = errs.iter().map(|e| (e.1.as_str(), e.2, e.3)).collect();
        assert_eq!(
            msgs,
            [
                ("manifest.name must be a non-empty string", 1, 10),
                ("manifest.version must be a non-empty string", 2, 13),
                ("tools[0] must be an object", 3, 12),
                ("tools[1].capabilities[0] must be a string", 3, 47),
            ]
        );
    }

    #[test]
    fn falsy_server_capabilities_is_a_shape_error() {
        for v in ["\"\"", "0", "false"] {
            let errs = check(&format!(
                r#"{{"name":"s","version":"1","tools":[],"serverCapabilities":{v}}}"#
            ))
            .unwrap_err();
            assert_eq!(errs[0].0, Code::ManifestShape, "{v}");
        }
        check(r#"{"name":"s","version":"1","tools":[],"serverCapabilities":null}"#).unwrap();
    }

    #[test]
    fn grammar_checks_run_first_and_stop() {
        let errs = check(r#"{"grammar":"1.0","tools":0}"#).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, Code::GrammarVersionMismatch);
        assert_eq!(
            errs[0].1,
            "manifest declares grammar \"1.0\" but compiler is at \"0.0\""
        );
        let errs = check(r#"{"grammar":null,"name":"s","version":"1","tools":[]}"#).unwrap_err();
        assert_eq!(errs[0].0, Code::ManifestShape);
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let errs = check(r#"{"name":"a","name":"b","version":"1","tools":[]}"#).unwrap_err();
        assert_eq!(errs[0].0, Code::ManifestDuplicateKey);
        assert_eq!((errs[0].2, errs[0].3), (1, 13));
    }

    #[test]
    fn invalid_json_is_located() {
        let errs = check("{\n  \"name\": x}").unwrap_err();
        assert_eq!(errs[0].0, Code::InputJson);
        assert_eq!((errs[0].2, errs[0].3), (2, 11));
    }
}
