//! A located document tree shared by the three import formats.
//!
//! JSON inputs are parsed with the project's strict parser ([`crate::json`]) and
//! YAML inputs with [`super::yaml`]; both end up here, so every importer reads
//! fields the same way and every error names the file, line and column of the
//! value together with its source path (`servers.github.permissions.network`).

use crate::diag::{quote, Code, Diagnostic, Location};

/// Largest input file an importer reads (the manifest limit, docs/security.md).
pub const MAX_INPUT: usize = 64 << 20;
/// Deepest nesting an importer accepts (the manifest limit).
pub const MAX_DEPTH: usize = 128;

/// A value with the line and column it starts at (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's source text.
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in source order; duplicate keys are refused while loading.
    Object(Vec<(String, Node)>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

impl Node {
    /// The member `key` of an object, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// `null` counts as absent: publishers write `key: null` and `key:` for "none".
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

/// Appends a member to a source path: `a.b`, or `a["x.y"]` for keys that are not
/// plain identifiers, so every path can be read back unambiguously.
pub fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", serde_json::Value::String(key.to_owned())),
    }
}

/// Appends an array index to a source path.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Reads fields of one input file and turns shape problems into located diagnostics.
pub struct Doc<'a> {
    pub file: &'a str,
}

impl Doc<'_> {
    pub fn location(&self, node: &Node) -> Location {
        Location {
            file: self.file.to_owned(),
            line: node.line,
            column: node.col,
        }
    }

    /// A located diagnostic about `node` at source path `path`.
    pub fn error(
        &self,
        code: Code,
        node: &Node,
        path: &str,
        message: impl AsRef<str>,
    ) -> Diagnostic {
        Diagnostic::new(code, format!("{path}: {}", message.as_ref())).at(self.location(node))
    }

    fn wrong_type(&self, node: &Node, path: &str, expected: &str) -> Diagnostic {
        self.error(
            Code::ImportShape,
            node,
            path,
            format!("expected {expected}, found {}", node.value.type_name()),
        )
    }

    /// The members of an object.
    pub fn object<'n>(
        &self,
        node: &'n Node,
        path: &str,
    ) -> Result<&'n [(String, Node)], Diagnostic> {
        match &node.value {
            Value::Object(m) => Ok(m),
            _ => Err(self.wrong_type(node, path, "an object")),
        }
    }

    /// The items of an array; `null` is an empty array.
    pub fn array<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [Node], Diagnostic> {
        match &node.value {
            Value::Array(a) => Ok(a),
            Value::Null => Ok(&[]),
            _ => Err(self.wrong_type(node, path, "an array")),
        }
    }

    pub fn string<'n>(&self, node: &'n Node, path: &str) -> Result<&'n str, Diagnostic> {
        match &node.value {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong_type(node, path, "a string")),
        }
    }

    /// A non-empty string.
    pub fn name<'n>(&self, node: &'n Node, path: &str) -> Result<&'n str, Diagnostic> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            return Err(self.error(Code::ImportShape, node, path, "expected a non-empty string"));
        }
        Ok(s)
    }

    /// A boolean; `null` is false.
    pub fn boolean(&self, node: &Node, path: &str) -> Result<bool, Diagnostic> {
        match &node.value {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            _ => Err(self.wrong_type(node, path, "a boolean")),
        }
    }

    /// A TCP port: an integer from 1 to 65535.
    pub fn port(&self, node: &Node, path: &str) -> Result<u16, Diagnostic> {
        let Value::Number(text) = &node.value else {
            return Err(self.wrong_type(node, path, "a port number"));
        };
        match text.parse::<u16>() {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(self.error(
                Code::ImportShape,
                node,
                path,
                format!("port {} is not an integer from 1 to 65535", quote(text)),
            )),
        }
    }
}

/// Converts a [`crate::json`] tree, refusing duplicate keys.
pub fn from_json(file: &str, bytes: &[u8]) -> Result<Node, Diagnostic> {
    if bytes.len() > MAX_INPUT {
        return Err(Diagnostic::new(
            Code::ManifestTooLarge,
            format!(
                "{}: {} bytes; the import limit is {MAX_INPUT}",
                quote(file),
                bytes.len()
            ),
        ));
    }
    let text = String::from_utf8_lossy(bytes);
    let lines = crate::source::LineIndex::new(&text);
    let at = |offset: usize| {
        let (line, column) = lines.line_col(offset);
        Location {
            file: file.to_owned(),
            line,
            column,
        }
    };
    let root = crate::json::parse(bytes)
        .map_err(|e| Diagnostic::new(Code::InputJson, e.message.clone()).at(at(e.offset)))?;
    convert(&root, &at)
}

fn convert(node: &crate::json::Node, at: &dyn Fn(usize) -> Location) -> Result<Node, Diagnostic> {
    use crate::json::Value as J;
    let loc = at(node.span.start);
    let value = match &node.value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Number(n.clone()),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Array(
            items
                .iter()
                .map(|n| convert(n, at))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(members) => {
            let mut out: Vec<(String, Node)> = Vec::with_capacity(members.len());
            // A set: a hostile file may hold millions of keys.
            let mut keys = std::collections::HashSet::with_capacity(members.len());
            for m in members {
                if !keys.insert(m.key.as_str()) {
                    return Err(Diagnostic::new(
                        Code::ManifestDuplicateKey,
                        format!("duplicate key {}", quote(&m.key)),
                    )
                    .at(at(m.key_span.start)));
                }
                out.push((m.key.clone(), convert(&m.value, at)?));
            }
            Value::Object(out)
        }
    };
    Ok(Node {
        value,
        line: loc.line,
        col: loc.column,
    })
}
