//! Source text and where things are in it: byte offsets to 1-based
//! line:column for every error capgate reports (manifests, rules files,
//! templates, imported registry files).

use crate::diag::Location;
use crate::manifest::MAX_MANIFEST_BYTES;

/// Maps byte offsets to 1-based line:column for error messages.
///
/// Columns count Unicode scalar values rather than bytes because that is what editors
/// show for a line containing e.g. `é`. Lines are split on LF only; with CRLF endings
/// the CR simply counts as the last column of its line. The index owns a copy of the
/// text so it can outlive the buffer it was built from; the lines are found when
/// the first offset is located, as most texts never have an error to point at.
pub struct LineIndex {
    text: Box<str>,
    /// Byte offset at which each line starts; always begins with 0.
    line_starts: std::sync::OnceLock<Vec<usize>>,
    /// Characters that start before each multiple of [`CHUNK`] bytes: a column
    /// is counted from the nearest one, not from its line's start, which for a
    /// file written on one line made locating every node of it quadratic.
    chunk_chars: std::sync::OnceLock<Vec<usize>>,
}

/// Bytes between two entries of [`LineIndex::chunk_chars`].
const CHUNK: usize = 512;

/// Whether `b` starts a character (is not a UTF-8 continuation byte).
fn starts_char(b: u8) -> bool {
    (b as i8) >= -0x40
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        LineIndex {
            text: text.into(),
            line_starts: std::sync::OnceLock::new(),
            chunk_chars: std::sync::OnceLock::new(),
        }
    }

    /// Characters that start before byte `offset`.
    fn chars_before(&self, offset: usize) -> usize {
        let bytes = self.text.as_bytes();
        let table = self.chunk_chars.get_or_init(|| {
            let mut table = Vec::with_capacity(bytes.len() / CHUNK + 1);
            let mut n = 0;
            table.push(0);
            for chunk in bytes.chunks(CHUNK) {
                n += chunk.iter().filter(|&&b| starts_char(b)).count();
                table.push(n);
            }
            table
        });
        let k = offset / CHUNK;
        table[k]
            + bytes[k * CHUNK..offset]
                .iter()
                .filter(|&&b| starts_char(b))
                .count()
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0];
            starts.extend(memchr::memchr_iter(b'\n', self.text.as_bytes()).map(|i| i + 1));
            starts
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Offsets past the end are clamped to the end, and offsets inside a multi-byte
    /// character resolve to that character, so callers never have to pre-validate.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_starts = self.line_starts();
        let line = line_starts.partition_point(|&start| start <= offset);
        let line_start = line_starts[line - 1];
        let column = self.chars_before(offset) - self.chars_before(line_start) + 1;
        (line, column)
    }
}

/// Where the manifest came from, for turning byte offsets into locations.
pub struct Source {
    pub name: String,
    lines: LineIndex,
}

impl Source {
    pub fn new(name: &str, bytes: &[u8]) -> Source {
        // An oversized manifest is refused before parsing, with no location:
        // indexing its lines would only spend time on input that is rejected.
        // Valid UTF-8 (every manifest that loads) is checked by the fast
        // validator; only invalid input takes the lossy decoder's slower walk.
        let text = if bytes.len() > MAX_MANIFEST_BYTES {
            std::borrow::Cow::Borrowed("")
        } else {
            std::str::from_utf8(bytes)
                .map(std::borrow::Cow::Borrowed)
                .unwrap_or_else(|_| String::from_utf8_lossy(bytes))
        };
        Source {
            name: name.to_owned(),
            lines: LineIndex::new(&text),
        }
    }

    /// The manifest's text (lossily decoded; a manifest that loaded was valid UTF-8).
    pub fn text(&self) -> &str {
        self.lines.text()
    }

    pub fn location(&self, offset: usize) -> Location {
        let (line, column) = self.lines.line_col(offset);
        Location {
            file: self.name.clone(),
            line,
            column,
        }
    }
}

/// `source.location(offset)` for every offset, in one pass over the text.
/// Locating each offset separately counts the characters from the start of
/// its line every time, which is quadratic for a manifest written on one line.
pub fn locate_all(source: &Source, offsets: &[usize]) -> Vec<Location> {
    let text = source.text();
    let bytes = text.as_bytes();
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_by_key(|&i| offsets[i]);
    let mut out: Vec<Option<Location>> = vec![None; offsets.len()];
    let (mut pos, mut line, mut column) = (0, 1, 1);
    for i in order {
        // As `LineIndex::line_col`: clamp to the end, back up to a character boundary.
        let mut target = offsets[i].min(text.len());
        while !text.is_char_boundary(target) {
            target -= 1;
        }
        for &b in &bytes[pos..target] {
            if b == b'\n' {
                line += 1;
                column = 1;
            } else if b & 0xc0 != 0x80 {
                column += 1;
            }
        }
        pos = target;
        out[i] = Some(Location {
            file: source.name.clone(),
            line,
            column,
        });
    }
    out.into_iter()
        .map(|l| l.expect("every offset is located"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index() {
        let text = "{\n  \"é\": \"😀x\",\r\n  \"k\": 1\n}";
        let index = LineIndex::new(text);
        assert_eq!(index.line_col(0), (1, 1));
        assert_eq!(index.line_col(1), (1, 2)); // the LF itself ends line 1
        assert_eq!(index.line_col(2), (2, 1));
        let x = text.find('x').unwrap();
        // `  "é": "😀` is 9 scalar values but 13 bytes, so 'x' is in column 10.
        assert_eq!(index.line_col(x), (2, 10));
        let k = text.find("\"k\"").unwrap();
        assert_eq!(index.line_col(k), (3, 3));
        assert_eq!(index.line_col(text.len() - 1), (4, 1));
        assert_eq!(index.line_col(text.len()), (4, 2));
        // Clamped, and mid-character offsets resolve to the character.
        assert_eq!(index.line_col(usize::MAX), (4, 2));
        let e = text.find('é').unwrap();
        assert_eq!(index.line_col(e + 1), index.line_col(e));
        assert_eq!(LineIndex::new("").line_col(0), (1, 1));
    }

    /// Columns counted from the chunk table agree with counting from the
    /// line's start, across chunk boundaries and inside multi-byte characters.
    #[test]
    fn line_col_agrees_with_counting_from_the_line_start() {
        let text: String = (0..3000)
            .map(|i| match (i % 7, i % 900) {
                // Lines of about 2,000 bytes: each spans several chunks.
                (_, 450) => "\n",
                (0, _) => "é",
                (1, _) => "😀",
                (3, _) => "€x",
                _ => "ab",
            })
            .collect();
        let index = LineIndex::new(&text);
        for offset in 0..=text.len() + 2 {
            let mut o = offset.min(text.len());
            while !text.is_char_boundary(o) {
                o -= 1;
            }
            let start = text[..o].rfind('\n').map_or(0, |i| i + 1);
            let line = text[..o].matches('\n').count() + 1;
            assert_eq!(
                index.line_col(offset),
                (line, text[start..o].chars().count() + 1),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn locate_all_matches_source_location() {
        let text = "{\n  \"a\": \"é€😀x\",\r\n\n\"b\": [\"ü\"]}";
        let source = Source::new("m.json", text.as_bytes());
        // Every offset, including ones inside multi-byte characters and past the end, shuffled.
        let mut offsets: Vec<usize> = (0..text.len() + 3).collect();
        offsets.reverse();
        offsets.swap(0, 7);
        let expected: Vec<Location> = offsets.iter().map(|&o| source.location(o)).collect();
        assert_eq!(locate_all(&source, &offsets), expected);
    }
}
