//! YAML (the Docker MCP catalog's `server.yaml`) into a located [`Node`] tree.
//!
//! Built on `yaml-rust2`'s event parser, not its document loader, so that
//! every value keeps its line and column and so that the features a catalog
//! entry never needs are refused instead of expanded: aliases (the loader
//! copies them, which makes a few bytes of "billion laughs" input expand
//! without bound), tags, several documents and duplicate keys (parsers
//! disagree on which duplicate wins). Plain scalars follow the YAML 1.2 core
//! schema (`true`, `null`, numbers); quoted scalars are always strings.
//!
//! Why `yaml-rust2` (docs/import.md): `serde_yaml` is archived; `yaml-rust2`
//! is maintained, pure Rust (no C library or `unsafe` port of libyaml), a YAML
//! 1.2 parser with an event API that gives positions, and its minimum Rust
//! version (1.85) is the project's.

use std::collections::HashSet;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::tree::{Node, Value, MAX_DEPTH, MAX_INPUT};
use crate::diag::{quote, Code, Diagnostic, Location};

/// Parses one YAML document.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Node, Diagnostic> {
    let err = |mark: Option<Marker>, message: String| {
        let d = Diagnostic::new(Code::ImportYaml, message);
        match mark {
            Some(m) => d.at(Location {
                file: file.to_owned(),
                line: m.line(),
                column: m.col() + 1,
            }),
            None => d.at(Location {
                file: file.to_owned(),
                line: 1,
                column: 1,
            }),
        }
    };
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
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(err(
            None,
            "input starts with a byte order mark; save it as UTF-8 without BOM".into(),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| err(None, format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut parser = Parser::new_from_str(text);
    // Open containers: (node under construction, pending key for mappings).
    enum Open {
        Seq(Node),
        /// The mapping, its pending key, and its keys so far (duplicates are
        /// refused: a set, as a hostile file may hold millions).
        Map(Node, Option<(String, Marker)>, HashSet<String>),
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| err(Some(*e.marker()), format!("YAML syntax: {}", e.info())))?;
        let at = |value: Value| Node {
            value,
            line: mark.line(),
            col: mark.col() + 1,
        };
        let complete: Option<Node> = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        Some(mark),
                        "more than one YAML document in the file".into(),
                    ));
                }
                None
            }
            Event::Alias(_) => {
                return Err(err(
                    Some(mark),
                    "YAML aliases (*name) are not supported: write the value out".into(),
                ))
            }
            Event::Scalar(text, style, _anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(err(
                        Some(mark),
                        format!("YAML tags ({}{}) are not supported", tag.handle, tag.suffix),
                    ));
                }
                Some(at(scalar(text, style)))
            }
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) if tag.is_some() => {
                return Err(err(Some(mark), "YAML tags are not supported".into()));
            }
            Event::SequenceStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        Some(mark),
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(Open::Seq(at(Value::Array(Vec::new()))));
                None
            }
            Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        Some(mark),
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(Open::Map(
                    at(Value::Object(Vec::new())),
                    None,
                    HashSet::new(),
                ));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(n)) => Some(n),
                _ => return Err(err(Some(mark), "unbalanced sequence end".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(n, None, _)) => Some(n),
                _ => return Err(err(Some(mark), "unbalanced mapping end".into())),
            },
        };
        let Some(node) = complete else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(seq)) => {
                if let Value::Array(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Open::Map(map, pending, keys)) => match pending.take() {
                None => {
                    let key = match node.value {
                        Value::String(s) | Value::Number(s) => s,
                        Value::Bool(b) => b.to_string(),
                        Value::Null => String::new(),
                        _ => {
                            return Err(err(Some(mark), "mapping keys must be scalars".into()));
                        }
                    };
                    // yaml.v3 (the Docker MCP gateway's reader) merges a `<<`
                    // key's mapping into this one; ignoring it would drop what it sets.
                    if key == "<<" {
                        return Err(err(
                            Some(mark),
                            "YAML merge keys (<<) are not supported: write the merged keys out"
                                .into(),
                        ));
                    }
                    if !keys.insert(key.clone()) {
                        return Err(err(Some(mark), format!("duplicate key {}", quote(&key))));
                    }
                    *pending = Some((key, mark));
                }
                Some((key, _)) => {
                    if let Value::Object(members) = &mut map.value {
                        members.push((key, node));
                    }
                }
            },
        }
    }
    root.ok_or_else(|| err(None, "empty YAML document".into()))
}

/// YAML 1.2 core schema for plain scalars; quoted and block scalars are strings.
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        t if is_decimal_integer(t) => Value::Number(t.to_owned()),
        _ => Value::String(text),
    }
}

fn is_decimal_integer(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_types() {
        let n = parse("f", b"a: 1\nb:\n  - \"x\"\n  - true\nc: ~\n").unwrap();
        let Value::Object(m) = &n.value else { panic!() };
        assert_eq!(m[0].1.value, Value::Number("1".into()));
        assert_eq!((m[1].1.line, m[1].1.col), (3, 3));
        assert_eq!(m[2].1.value, Value::Null);
    }

    #[test]
    fn refuses_aliases_tags_duplicates_and_documents() {
        for bad in [
            "a: &x [1]\nb: *x\n",
            "a: !!str 1\n",
            "a: 1\na: 2\n",
            "a: 1\n---\nb: 2\n",
            "a: [1\n",
        ] {
            let e = parse("f", bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, Code::ImportYaml, "{bad}");
            assert!(e.location.is_some());
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse("f", deep.as_bytes()).unwrap_err().code,
            Code::ImportYaml
        );
    }
}
