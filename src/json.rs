//! A strict RFC 8259 JSON parser that records the byte span of every value.
//!
//! Manifests are written by hand, and a policy compiler that says "invalid capability"
//! without saying *where* wastes the author's time. serde_json reports positions only
//! for syntax errors, not for values that are well-formed JSON but semantically wrong,
//! so we keep our own tree with spans and let the caller map any span to line:column.
//!
//! The parser is deliberately strict (no comments, no trailing commas, no BOM, no lone
//! surrogates) because whatever we accept here must also be accepted by the reference
//! tool's `JSON.parse`, or the two would disagree about which manifests are valid.

use std::fmt;

/// Byte offsets into the input, so spans stay valid regardless of how the caller
/// later chooses to count columns.
pub type Span = std::ops::Range<usize>;

/// A value together with the bytes it came from, so semantic errors found long after
/// parsing can still point at the offending text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Kept as the validated source text: converting to `f64` would silently lose
    /// precision on large integers, and the caller knows which numeric type it wants.
    Number(String),
    /// Decoded (escapes resolved, surrogate pairs combined).
    String(String),
    Array(Vec<Node>),
    /// Members in source order with duplicates kept: the reference tool lets the last
    /// duplicate win silently, which hides mistakes, so the caller decides whether to
    /// reject them and needs both spans to say where.
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    /// Includes the quotes, so a duplicate-key error can underline the key itself.
    pub key_span: Span,
    pub value: Node,
}

/// A parse failure. `offset` is a byte offset so the caller can render it with the
/// same [`crate::source::LineIndex`] it uses for semantic errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub message: String,
    pub offset: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Nesting limit for arrays and objects. The parser recurses once per level, so this
/// bound is what makes a hostile `[[[[…` input fail cleanly instead of overflowing the
/// stack; no legitimate manifest comes anywhere near it.
pub const MAX_DEPTH: usize = 128;

impl Value {
    /// The JSON type name, for "expected X, found Y" messages aimed at manifest authors,
    /// who think in JSON types rather than Rust variants.
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

// Spelled out because editors that add a BOM hide it, so the fix must be in the message.
const BOM_MESSAGE: &str =
    "input starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 without BOM";

/// Parses a complete JSON text.
///
/// Takes bytes rather than `&str` so that invalid UTF-8 is reported as a positioned
/// JSON error instead of failing earlier in a file-reading helper with no location.
pub fn parse(input: &[u8]) -> Result<Node, JsonError> {
    // Checked before UTF-8 validation because a BOM is valid UTF-8; it must be rejected
    // because `JSON.parse` in the reference tool rejects it too.
    if input.starts_with(b"\xEF\xBB\xBF") {
        return Err(JsonError {
            message: BOM_MESSAGE.to_owned(),
            offset: 0,
        });
    }
    // Validating once up front lets the rest of the parser slice `&str` freely: every
    // place it stops is next to an ASCII byte and therefore on a char boundary.
    let text = std::str::from_utf8(input).map_err(|e| JsonError {
        message: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        offset: e.valid_up_to(),
    })?;
    let mut parser = Parser {
        text,
        bytes: input,
        pos: 0,
    };
    parser.skip_whitespace();
    if parser.pos == input.len() {
        return Err(parser.error_at(parser.pos, "empty input: expected a JSON value".to_owned()));
    }
    let root = parser.parse_value(0)?;
    parser.skip_whitespace();
    if parser.pos != input.len() {
        return Err(parser.error_at(
            parser.pos,
            "trailing characters after the JSON value".to_owned(),
        ));
    }
    Ok(root)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error_at(&self, offset: usize, message: String) -> JsonError {
        JsonError { message, offset }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Only the four RFC 8259 whitespace bytes: accepting e.g. U+00A0 or form feed would
    /// make us more lenient than the reference tool.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Describes what sits at `offset` for "found …" messages. Invisible characters are
    /// shown as code points because quoting them literally would print nothing useful.
    fn found(&self, offset: usize) -> String {
        match self.text.get(offset..).and_then(|s| s.chars().next()) {
            None => "end of input".to_owned(),
            Some(c) if c.is_control() || c.is_whitespace() || c == '\u{FEFF}' => {
                format!("U+{:04X}", c as u32)
            }
            Some(c) => format!("'{c}'"),
        }
    }

    fn parse_value(&mut self, depth: usize) -> Result<Node, JsonError> {
        let start = self.pos;
        match self.peek() {
            Some(b'{') => self.parse_object(depth),
            Some(b'[') => self.parse_array(depth),
            Some(b'"') => {
                let s = self.parse_string()?;
                Ok(Node {
                    value: Value::String(s),
                    span: start..self.pos,
                })
            }
            Some(b'-' | b'0'..=b'9') => self.parse_number(),
            Some(b't') if self.bytes[start..].starts_with(b"true") => {
                self.literal(4, Value::Bool(true))
            }
            Some(b'f') if self.bytes[start..].starts_with(b"false") => {
                self.literal(5, Value::Bool(false))
            }
            Some(b'n') if self.bytes[start..].starts_with(b"null") => self.literal(4, Value::Null),
            _ => {
                // Show the whole word for things like `True`, `NaN` or `undefined`,
                // which are the usual near-misses; a single letter would be cryptic.
                let word_len = self.bytes[start..]
                    .iter()
                    .take(32)
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                let found = if word_len > 0 {
                    format!("'{}'", &self.text[start..start + word_len])
                } else {
                    self.found(start)
                };
                Err(self.error_at(start, format!("expected a JSON value, found {found}")))
            }
        }
    }

    fn literal(&mut self, len: usize, value: Value) -> Result<Node, JsonError> {
        let start = self.pos;
        self.pos += len;
        Ok(Node {
            value,
            span: start..self.pos,
        })
    }

    fn enter(&self, depth: usize) -> Result<usize, JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.error_at(self.pos, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    fn parse_array(&mut self, depth: usize) -> Result<Node, JsonError> {
        let depth = self.enter(depth)?;
        let start = self.pos;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node {
                value: Value::Array(items),
                span: start..self.pos,
            });
        }
        loop {
            self.skip_whitespace();
            if items.is_empty() && self.peek().is_none() {
                return Err(self.error_at(
                    self.pos,
                    "expected a JSON value or ']' in array, found end of input".to_owned(),
                ));
            }
            if !items.is_empty() && self.peek() == Some(b']') {
                return Err(self.error_at(
                    self.pos,
                    "expected a JSON value after ',' in array, found ']' (trailing comma)"
                        .to_owned(),
                ));
            }
            items.push(self.parse_value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node {
                        value: Value::Array(items),
                        span: start..self.pos,
                    });
                }
                _ => {
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "expected ',' or ']' after array element, found {}",
                            self.found(self.pos)
                        ),
                    ))
                }
            }
        }
    }

    fn parse_object(&mut self, depth: usize) -> Result<Node, JsonError> {
        let depth = self.enter(depth)?;
        let start = self.pos;
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node {
                value: Value::Object(members),
                span: start..self.pos,
            });
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                let message = if members.is_empty() {
                    format!(
                        "expected string key or '}}' in object, found {}",
                        self.found(self.pos)
                    )
                } else if self.peek() == Some(b'}') {
                    "expected string key after ',' in object, found '}' (trailing comma)".to_owned()
                } else {
                    format!(
                        "expected string key after ',' in object, found {}",
                        self.found(self.pos)
                    )
                };
                return Err(self.error_at(self.pos, message));
            }
            let key_start = self.pos;
            let key = self.parse_string()?;
            let key_span = key_start..self.pos;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error_at(
                    self.pos,
                    format!(
                        "expected ':' after object key, found {}",
                        self.found(self.pos)
                    ),
                ));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.parse_value(depth)?;
            members.push(Member {
                key,
                key_span,
                value,
            });
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node {
                        value: Value::Object(members),
                        span: start..self.pos,
                    });
                }
                _ => {
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "expected ',' or '}}' after object member, found {}",
                            self.found(self.pos)
                        ),
                    ))
                }
            }
        }
    }

    /// Parses a string starting at the opening quote and returns it decoded.
    ///
    /// Runs of ordinary bytes are copied with one `push_str` each rather than char by
    /// char, which keeps multi-megabyte strings cheap; slicing is safe because runs
    /// only ever end next to an ASCII byte.
    fn parse_string(&mut self) -> Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            match self.peek() {
                // Most strings have no escapes: one exact allocation.
                Some(b'"') if out.is_empty() => {
                    self.pos += 1;
                    return Ok(self.text[run_start..self.pos - 1].to_owned());
                }
                _ => out.push_str(&self.text[run_start..self.pos]),
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.parse_escape(&mut out)?,
                Some(b) => {
                    return Err(self.error_at(
                        self.pos,
                        format!("unescaped control character U+{b:04X} in string"),
                    ))
                }
                // Pointing at the opening quote is more useful than pointing at the
                // end of the file, which is where the parser merely noticed.
                None => {
                    return Err(self.error_at(
                        open,
                        "unterminated string: expected '\"' before end of input".to_owned(),
                    ))
                }
            }
        }
    }

    /// Decodes one escape sequence starting at the backslash.
    fn parse_escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let backslash = self.pos;
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{08}',
            Some(b'f') => '\u{0C}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate is only meaningful when a low surrogate
                        // escape follows immediately.
                        let low = if self.bytes[self.pos..].starts_with(b"\\u") {
                            let save = self.pos;
                            self.pos += 2;
                            let low = self.hex4()?;
                            if (0xDC00..=0xDFFF).contains(&low) {
                                Some(low)
                            } else {
                                self.pos = save;
                                None
                            }
                        } else {
                            None
                        };
                        match low {
                            Some(low) => {
                                let cp = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                char::from_u32(cp).expect("surrogate pair is a valid scalar")
                            }
                            None => return Err(self.lone_surrogate(backslash, unit)),
                        }
                    }
                    0xDC00..=0xDFFF => return Err(self.lone_surrogate(backslash, unit)),
                    _ => char::from_u32(unit).expect("non-surrogate BMP unit is a valid scalar"),
                };
                out.push(c);
                return Ok(());
            }
            None => {
                return Err(self.error_at(
                    backslash,
                    "unterminated escape sequence at end of input".to_owned(),
                ))
            }
            Some(_) => {
                return Err(self.error_at(
                    backslash,
                    format!(
                        "expected one of \" \\ / b f n r t u after '\\' in string, found {}",
                        self.found(self.pos)
                    ),
                ))
            }
        };
        self.pos += 1;
        out.push(c);
        Ok(())
    }

    /// Lone surrogates are rejected rather than replaced with U+FFFD: the reference tool
    /// would hash them as U+FFFD, so accepting them would silently make two different
    /// manifests hash alike.
    fn lone_surrogate(&self, backslash: usize, unit: u32) -> JsonError {
        self.error_at(
            backslash,
            format!("lone UTF-16 surrogate \\u{unit:04X} in string"),
        )
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => {
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "expected 4 hex digits after \\u in string, found {}",
                            self.found(self.pos)
                        ),
                    ))
                }
            };
            value = value * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(value)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, checked exactly so that we never
    /// accept a number the reference tool's `JSON.parse` would reject.
    fn parse_number(&mut self) -> Result<Node, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(
                        self.error_at(start, "leading zeros are not allowed in numbers".to_owned())
                    );
                }
            }
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => {
                return Err(self.error_at(
                    self.pos,
                    format!(
                        "expected digit after '-' in number, found {}",
                        self.found(self.pos)
                    ),
                ))
            }
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.require_digit("expected digit after '.' in number")?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.require_digit("expected digit in number exponent")?;
        }
        Ok(Node {
            value: Value::Number(self.text[start..self.pos].to_owned()),
            span: start..self.pos,
        })
    }

    fn require_digit(&mut self, what: &str) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error_at(self.pos, format!("{what}, found {}", self.found(self.pos))));
        }
        self.skip_digits();
        Ok(())
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Node {
        parse(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?} failed: {e}"))
    }

    fn err(input: &[u8]) -> JsonError {
        match parse(input) {
            Ok(node) => panic!("{:?} parsed as {node:?}", String::from_utf8_lossy(input)),
            Err(e) => e,
        }
    }

    fn assert_err(input: &[u8], message: &str, offset: usize) {
        let e = err(input);
        assert_eq!(
            (e.message.as_str(), e.offset),
            (message, offset),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn string_value(input: &str) -> String {
        match ok(input).value {
            Value::String(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn literals_and_numbers() {
        assert_eq!(ok("null").value, Value::Null);
        assert_eq!(ok(" true ").value, Value::Bool(true));
        assert_eq!(ok("\t\r\nfalse").value, Value::Bool(false));
        for n in [
            "0",
            "-0",
            "7",
            "-12",
            "1.5",
            "0.25",
            "1e5",
            "1E+5",
            "1e-05",
            "-0.0e0",
            "123456789012345678901234567890",
        ] {
            assert_eq!(ok(n).value, Value::Number(n.to_owned()), "{n}");
            assert_eq!(ok(n).span, 0..n.len());
        }
    }

    #[test]
    fn number_errors() {
        assert_err(b"01", "leading zeros are not allowed in numbers", 0);
        assert_err(b"-01", "leading zeros are not allowed in numbers", 0);
        assert_err(b"+1", "expected a JSON value, found '+'", 0);
        assert_err(b".5", "expected a JSON value, found '.'", 0);
        assert_err(
            b"1.",
            "expected digit after '.' in number, found end of input",
            2,
        );
        assert_err(b"1.e5", "expected digit after '.' in number, found 'e'", 2);
        assert_err(
            b"-",
            "expected digit after '-' in number, found end of input",
            1,
        );
        assert_err(b"-a", "expected digit after '-' in number, found 'a'", 1);
        assert_err(
            b"1e",
            "expected digit in number exponent, found end of input",
            2,
        );
        assert_err(
            b"1e+",
            "expected digit in number exponent, found end of input",
            3,
        );
        assert_err(b"[1.x]", "expected digit after '.' in number, found 'x'", 3);
        assert_err(b"1x", "trailing characters after the JSON value", 1);
        assert_err(b"NaN", "expected a JSON value, found 'NaN'", 0);
        assert_err(
            b"-Infinity",
            "expected digit after '-' in number, found 'I'",
            1,
        );
    }

    #[test]
    fn literal_errors() {
        assert_err(b"tru", "expected a JSON value, found 'tru'", 0);
        assert_err(b"True", "expected a JSON value, found 'True'", 0);
        assert_err(
            b"[undefined]",
            "expected a JSON value, found 'undefined'",
            1,
        );
        assert_err(b"nulll", "trailing characters after the JSON value", 4);
    }

    #[test]
    fn encoding_errors() {
        assert_err(
            b"\xEF\xBB\xBF{}",
            "input starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 without BOM",
            0,
        );
        assert_err(b"[\"ab\xFFc\"]", "invalid UTF-8 at byte 4", 4);
        assert_err(b"\xC3", "invalid UTF-8 at byte 0", 0);
        // Overlong encoding of '/' and a UTF-8-encoded surrogate are both invalid.
        assert_err(b"\"\xC0\xAF\"", "invalid UTF-8 at byte 1", 1);
        assert_err(b"\"\xED\xA0\x80\"", "invalid UTF-8 at byte 1", 1);
    }

    #[test]
    fn empty_and_trailing() {
        assert_err(b"", "empty input: expected a JSON value", 0);
        assert_err(b" \n\t\r", "empty input: expected a JSON value", 4);
        assert_err(b"{} {}", "trailing characters after the JSON value", 3);
        assert_err(b"1 2", "trailing characters after the JSON value", 2);
        assert_err(b"\"a\"x", "trailing characters after the JSON value", 3);
    }

    #[test]
    fn whitespace_is_strict() {
        assert_err(b"\x0C1", "expected a JSON value, found U+000C", 0);
        assert_err(
            "[1,\u{A0}2]".as_bytes(),
            "expected a JSON value, found U+00A0",
            3,
        );
        assert_err(
            "{}\u{FEFF}".as_bytes(),
            "trailing characters after the JSON value",
            2,
        );
    }

    #[test]
    fn structure_errors() {
        assert_err(
            b"{\"a\":1 x}",
            "expected ',' or '}' after object member, found 'x'",
            7,
        );
        assert_err(b"{\"a\" 1}", "expected ':' after object key, found '1'", 5);
        assert_err(
            b"{a:1}",
            "expected string key or '}' in object, found 'a'",
            1,
        );
        assert_err(
            b"{\"a\":1,}",
            "expected string key after ',' in object, found '}' (trailing comma)",
            7,
        );
        assert_err(
            b"{\"a\":1,2}",
            "expected string key after ',' in object, found '2'",
            7,
        );
        assert_err(b"{\"a\":}", "expected a JSON value, found '}'", 5);
        assert_err(
            b"{\"a\":1",
            "expected ',' or '}' after object member, found end of input",
            6,
        );
        assert_err(
            b"{",
            "expected string key or '}' in object, found end of input",
            1,
        );
        assert_err(
            b"[1,]",
            "expected a JSON value after ',' in array, found ']' (trailing comma)",
            3,
        );
        assert_err(
            b"[1 2]",
            "expected ',' or ']' after array element, found '2'",
            3,
        );
        assert_err(
            b"[1",
            "expected ',' or ']' after array element, found end of input",
            2,
        );
        assert_err(
            b"[",
            "expected a JSON value or ']' in array, found end of input",
            1,
        );
        assert_err(b"[,1]", "expected a JSON value, found ','", 1);
        assert_err(b"]", "expected a JSON value, found ']'", 0);
        assert_err(
            "[1é]".as_bytes(),
            "expected ',' or ']' after array element, found 'é'",
            2,
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            string_value(r#""a\"b\\c\/d\be\ff\ng\rh\ti""#),
            "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti"
        );
        assert_eq!(string_value(r#""\u0041\u00e9\u00E9\u20AC""#), "Aéé€");
        assert_eq!(string_value(r#""\u0000""#), "\0");
        assert_eq!(string_value("\"héllo ✓ \u{1F600}\""), "héllo ✓ 😀");
        assert_eq!(string_value(r#""""#), "");
        // U+007F and non-ASCII are not control characters in the JSON sense.
        assert_eq!(string_value("\"\u{7F}\u{85}\""), "\u{7F}\u{85}");
    }

    #[test]
    fn surrogate_pairs() {
        assert_eq!(string_value(r#""\uD83D\uDE00""#), "😀");
        assert_eq!(string_value(r#""x\ud83d\ude00y""#), "x😀y");
        assert_eq!(string_value(r#""\uDBFF\uDFFF""#), "\u{10FFFF}");
        assert_eq!(string_value(r#""\uD800\uDC00""#), "\u{10000}");
    }

    #[test]
    fn string_errors() {
        assert_err(br#""\uD800""#, "lone UTF-16 surrogate \\uD800 in string", 1);
        assert_err(
            br#""ab\ud800x""#,
            "lone UTF-16 surrogate \\uD800 in string",
            3,
        );
        assert_err(
            br#""\uD800\u0041""#,
            "lone UTF-16 surrogate \\uD800 in string",
            1,
        );
        assert_err(
            br#""\uD800\uD800""#,
            "lone UTF-16 surrogate \\uD800 in string",
            1,
        );
        assert_err(br#""\uDC00""#, "lone UTF-16 surrogate \\uDC00 in string", 1);
        assert_err(
            br#""\uD800\n""#,
            "lone UTF-16 surrogate \\uD800 in string",
            1,
        );
        assert_err(
            br#""\uD800\u12""#,
            "expected 4 hex digits after \\u in string, found '\"'",
            11,
        );
        assert_err(
            b"\"a\nb\"",
            "unescaped control character U+000A in string",
            2,
        );
        assert_err(
            b"\"\x00\"",
            "unescaped control character U+0000 in string",
            1,
        );
        assert_err(
            b"\"\x1F\"",
            "unescaped control character U+001F in string",
            1,
        );
        assert_err(
            b"\"\tx\"",
            "unescaped control character U+0009 in string",
            1,
        );
        assert_err(
            br#""\x""#,
            "expected one of \" \\ / b f n r t u after '\\' in string, found 'x'",
            1,
        );
        assert_err(
            br#""\'""#,
            "expected one of \" \\ / b f n r t u after '\\' in string, found '''",
            1,
        );
        assert_err(
            br#""\u12G4""#,
            "expected 4 hex digits after \\u in string, found 'G'",
            5,
        );
        assert_err(
            br#""\u12"#,
            "expected 4 hex digits after \\u in string, found end of input",
            5,
        );
        assert_err(
            b"  \"abc",
            "unterminated string: expected '\"' before end of input",
            2,
        );
        assert_err(
            b"\"abc\\",
            "unterminated escape sequence at end of input",
            4,
        );
        assert_err(
            b"{\"a",
            "unterminated string: expected '\"' before end of input",
            1,
        );
    }

    #[test]
    fn spans_of_nested_values() {
        let input = r#"{ "a" : [1, "x\n", {"b": null}] , "c": true }"#;
        let root = ok(input);
        assert_eq!(root.span, 0..input.len());
        let Value::Object(members) = &root.value else {
            panic!("not an object")
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].key, "a");
        assert_eq!(&input[members[0].key_span.clone()], r#""a""#);
        assert_eq!(
            &input[members[0].value.span.clone()],
            r#"[1, "x\n", {"b": null}]"#
        );
        let Value::Array(items) = &members[0].value.value else {
            panic!("not an array")
        };
        assert_eq!(&input[items[0].span.clone()], "1");
        assert_eq!(&input[items[1].span.clone()], r#""x\n""#);
        assert_eq!(items[1].value, Value::String("x\n".to_owned()));
        assert_eq!(&input[items[2].span.clone()], r#"{"b": null}"#);
        let Value::Object(inner) = &items[2].value else {
            panic!("not an object")
        };
        assert_eq!(&input[inner[0].key_span.clone()], r#""b""#);
        assert_eq!(&input[inner[0].value.span.clone()], "null");
        assert_eq!(&input[members[1].key_span.clone()], r#""c""#);
        assert_eq!(&input[members[1].value.span.clone()], "true");
    }

    #[test]
    fn spans_count_bytes_not_chars() {
        let input = "[\"é\", \"\\u00e9\", 2]";
        let Value::Array(items) = ok(input).value else {
            panic!("not an array")
        };
        assert_eq!(items[0].span, 1..5);
        assert_eq!(items[1].span, 7..15);
        assert_eq!(items[2].span, 17..18);
    }

    #[test]
    fn duplicate_keys_are_kept_in_order() {
        let Value::Object(members) = ok(r#"{"k": 1, "j": 2, "k": 3}"#).value else {
            panic!("not an object")
        };
        let keys: Vec<_> = members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["k", "j", "k"]);
        assert_eq!(members[0].value.value, Value::Number("1".to_owned()));
        assert_eq!(members[2].value.value, Value::Number("3".to_owned()));
        assert_eq!(members[0].key_span, 1..4);
        assert_eq!(members[2].key_span, 17..20);
    }

    #[test]
    fn empty_containers() {
        assert_eq!(ok("[]").value, Value::Array(vec![]));
        assert_eq!(ok("{ }").value, Value::Object(vec![]));
        assert_eq!(ok(" [ \n ] ").span, 1..6);
    }

    #[test]
    fn type_names() {
        let names: Vec<_> = ["null", "true", "1", "\"s\"", "[]", "{}"]
            .iter()
            .map(|s| ok(s).value.type_name())
            .collect();
        assert_eq!(
            names,
            ["null", "boolean", "number", "string", "array", "object"]
        );
    }

    #[test]
    fn depth_limit() {
        let nested = |open: &str, close: &str, n: usize| {
            // Objects need a value at the bottom; arrays are fine empty.
            let inner = if open == "[" { "" } else { "0" };
            format!("{}{inner}{}", open.repeat(n), close.repeat(n)).into_bytes()
        };
        assert!(parse(&nested("[", "]", MAX_DEPTH)).is_ok());
        assert_err(
            &nested("[", "]", MAX_DEPTH + 1),
            "nesting deeper than 128 levels",
            MAX_DEPTH,
        );
        assert!(parse(&nested("{\"a\":", "}", MAX_DEPTH - 1)).is_ok());
        let mut mixed = nested("{\"a\":", "}", MAX_DEPTH - 1);
        mixed.splice(0..0, *b"[");
        mixed.push(b']');
        assert!(parse(&mixed).is_ok());
        let e = err(&nested("{\"a\":", "}", MAX_DEPTH + 1));
        assert_eq!(e.message, "nesting deeper than 128 levels");
        assert_eq!(e.offset, MAX_DEPTH * 5);
        // Far beyond the limit must fail cleanly, not overflow the stack.
        let e = err(&vec![b'['; 1_000_000]);
        assert_eq!(e.message, "nesting deeper than 128 levels");
    }

    #[test]
    fn ten_megabyte_string() {
        let body = "abcdefghé".repeat(1_000_000);
        let input = format!("\"{body}\"");
        assert!(input.len() > 10_000_000);
        let node = ok(&input);
        assert_eq!(node.span, 0..input.len());
        assert_eq!(node.value, Value::String(body));

        // The escape-heavy path must stay linear too.
        let input = format!("\"{}\"", "\\n\\u00e9x".repeat(1_000_000));
        let Value::String(s) = ok(&input).value else {
            panic!("not a string")
        };
        assert_eq!(s.len(), 4_000_000);
    }

    #[test]
    fn large_array() {
        let input = format!(
            "[{}]",
            (0..100_000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let Value::Array(items) = ok(&input).value else {
            panic!("not an array")
        };
        assert_eq!(items.len(), 100_000);
        assert_eq!(items[99_999].value, Value::Number("99999".to_owned()));
        assert_eq!(&input[items[99_999].span.clone()], "99999");
    }

    #[test]
    fn line_index_locates_parse_errors() {
        let text = "{\n  \"naïve\": [1,\n    2,]\n}";
        let e = err(text.as_bytes());
        assert_eq!(
            crate::source::LineIndex::new(text).line_col(e.offset),
            (3, 7)
        );
    }
}
