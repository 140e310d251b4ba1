//! Per-format value checks applied to every value a template prints.
//!
//! capgate refuses a value that could change the structure of its output
//! rather than trying to quote it: the grammar already keeps such characters
//! out of capability values, so a refusal here means an operator option or an
//! operator template produced something unexpected, and a policy must not be
//! written on a guess. The checks are pure functions so they can be tested on
//! their own.

use crate::rules::Format;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The format a template writes, from its file name: `<name>.<format>.j2`.
/// Note and reason templates (plain text inside JSON strings) use `Text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaper {
    Output(Format),
    Text,
}

impl Escaper {
    pub fn for_template(name: &str) -> Escaper {
        let stem = name.strip_suffix(".j2").unwrap_or(name);
        // Called for every printed value: a byte search, not a `str` pattern.
        let format = match stem.bytes().rposition(|b| b == b'.') {
            Some(dot) => &stem[dot + 1..],
            None => stem,
        };
        match format {
            "argv" => Escaper::Output(Format::Argv),
            "squid" => Escaper::Output(Format::Squid),
            "nft" => Escaper::Output(Format::Nft),
            "lines" => Escaper::Output(Format::Lines),
            "json" => Escaper::Output(Format::Json),
            "yaml" => Escaper::Output(Format::Yaml),
            _ => Escaper::Text,
        }
    }

    /// Whether the formatter writes strings quoted (YAML double-quoted
    /// scalars): the check then only refuses invisible characters.
    pub fn quotes(self) -> bool {
        self == Escaper::Output(Format::Yaml)
    }

    /// Checks one printed string value.
    pub fn check(self, value: &str) -> Result<(), Refused> {
        if self.plainly_fine(value) {
            return Ok(());
        }
        self.check_chars(value)
    }

    /// A quick byte scan for the common case, an ASCII value the checks
    /// accept. Only ever says yes when [`Escaper::check_chars`] would, so
    /// every refusal (and its message) still comes from there.
    fn plainly_fine(self, value: &str) -> bool {
        let bytes = value.as_bytes();
        // ASCII and no control byte. Every other ASCII whitespace byte is a
        // control, so a space is the only whitespace left for `argv` to check.
        if !bytes.iter().all(|&b| (b' '..0x7f).contains(&b)) {
            return false;
        }
        match self {
            Escaper::Text => true,
            Escaper::Output(Format::Argv) => match (bytes.first(), bytes.last()) {
                (Some(&first), Some(&last)) => first != b' ' && first != b'-' && last != b' ',
                _ => false,
            },
            Escaper::Output(Format::Squid | Format::Nft | Format::Lines) => {
                bytes.first().is_some_and(|&b| b != b'-')
                    && bytes
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
            }
            Escaper::Output(Format::Json) => !bytes.iter().any(|&b| b == b'"' || b == b'\\'),
            // Quoted by the formatter: any visible text.
            Escaper::Output(Format::Yaml) => true,
        }
    }

    fn check_chars(self, value: &str) -> Result<(), Refused> {
        if let Some(c) = value.chars().find(|c| crate::diag::is_invisible(*c)) {
            return Err(Refused(format!(
                "contains control or invisible character U+{:04X}",
                c as u32
            )));
        }
        match self {
            Escaper::Text => Ok(()),
            Escaper::Output(Format::Argv) => argv(value),
            Escaper::Output(Format::Squid | Format::Nft | Format::Lines) => token(value),
            Escaper::Output(Format::Json) => json_string(value),
            Escaper::Output(Format::Yaml) => Ok(()),
        }
    }
}

/// An argv element: one line, no surrounding whitespace (elements are split
/// on lines and trimmed), and no leading `-` so a value can never become an
/// option of the program it is passed to.
fn argv(value: &str) -> Result<(), Refused> {
    if value.is_empty() {
        return Err(Refused("is empty".to_owned()));
    }
    if value.trim() != value {
        return Err(Refused("has leading or trailing whitespace".to_owned()));
    }
    if value.starts_with('-') {
        return Err(Refused(
            "starts with `-` and could be read as an option".to_owned(),
        ));
    }
    Ok(())
}

/// A configuration token (squid.conf parameter, nft address or port): a
/// strict allowlist, because both formats split on whitespace, start comments
/// with `#` and give meaning to quotes, braces, commas and semicolons.
fn token(value: &str) -> Result<(), Refused> {
    if value.is_empty() {
        return Err(Refused("is empty".to_owned()));
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:/-".contains(*c)))
    {
        Some(c) => Err(Refused(format!(
            "contains {c:?}, which is not allowed in a configuration token (letters, digits and . _ : / -)"
        ))),
        None if value.starts_with('-') => Err(Refused("starts with `-`".to_owned())),
        None => Ok(()),
    }
}

/// Text inside a JSON string literal: no quote or backslash, so the value can
/// neither close the string nor start an escape (controls are refused above).
fn json_string(value: &str) -> Result<(), Refused> {
    match value.chars().find(|c| matches!(c, '"' | '\\')) {
        Some(c) => Err(Refused(format!(
            "contains {c:?}, which would end or escape a JSON string"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaper_from_name() {
        assert_eq!(
            Escaper::for_template("bwrap/main.argv.j2"),
            Escaper::Output(Format::Argv)
        );
        assert_eq!(
            Escaper::for_template("squid/allow.squid.j2"),
            Escaper::Output(Format::Squid)
        );
        assert_eq!(
            Escaper::for_template("nftables/x.nft.j2"),
            Escaper::Output(Format::Nft)
        );
        assert_eq!(Escaper::for_template("note:bwrap.fs"), Escaper::Text);
    }

    #[test]
    fn argv_refusals() {
        let a = Escaper::Output(Format::Argv);
        assert!(
            a.check("/home/u/my dir; rm -rf /").is_ok(),
            "one element, exec never sees a shell"
        );
        for bad in ["", " x", "x\n--privileged", "-x", "a\0b", "a\u{202e}"] {
            assert!(a.check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_refusals() {
        let s = Escaper::Output(Format::Squid);
        assert!(s.check("api.github.com").is_ok());
        assert!(s.check("2606:4700::1111").is_ok());
        assert!(s.check("10.0.0.0/8").is_ok());
        for bad in [
            "x.com\nhttp_access allow all",
            "a .",
            "x\" accept; #",
            "a#b",
            "{",
            "a,b",
            "a;b",
            "",
            "-n",
        ] {
            assert!(s.check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_refusals() {
        let j = Escaper::Output(Format::Json);
        assert!(j.check("/home/u/my dir").is_ok());
        for bad in ["a\"b", "a\\u0022", "a\nb"] {
            assert!(j.check(bad).is_err(), "{bad:?}");
        }
    }

    /// The byte fast path may only accept what the character checks accept.
    #[test]
    fn fast_path_never_accepts_what_the_checks_refuse() {
        let escapers = [
            Escaper::Text,
            Escaper::Output(Format::Argv),
            Escaper::Output(Format::Squid),
            Escaper::Output(Format::Nft),
            Escaper::Output(Format::Lines),
            Escaper::Output(Format::Json),
        ];
        let mut values: Vec<String> = vec![String::new()];
        // Every string of up to two characters from an alphabet with every
        // ASCII byte and a few others (non-ASCII space, invisible, letter).
        let alphabet: Vec<char> = (0u8..=0x7f)
            .map(char::from)
            .chain(['\u{a0}', '\u{3000}', '\u{200b}', 'é'])
            .collect();
        for a in &alphabet {
            values.push(a.to_string());
            for b in &alphabet {
                values.push(format!("{a}{b}"));
                values.push(format!("{a}x{b}"));
            }
        }
        for e in escapers {
            for v in &values {
                assert_eq!(e.check(v), e.check_chars(v), "{e:?} {v:?}");
            }
        }
    }

    #[test]
    fn text_allows_prose_but_not_controls() {
        assert!(Escaper::Text
            .check("evaluate() runs JS: \"untrusted\"")
            .is_ok());
        assert!(Escaper::Text.check("a\nb").is_err());
    }
}
