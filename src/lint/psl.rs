//! The Public Suffix List, for `net-wildcard-egress`: which wildcards reach
//! names that third parties can register.
//!
//! `public_suffix_list.dat` is a verbatim copy of Debian's `publicsuffix`
//! package 20230209.2326-1 (`/usr/share/publicsuffix/public_suffix_list.dat`,
//! from <https://publicsuffix.org/list/public_suffix_list.dat>, MPL-2.0), ICANN
//! and private sections. Entries written in Unicode (IDN suffixes) are skipped:
//! capgate host names are ASCII, and a punycode `xn--` wildcard base is still
//! caught when it is a single label (a TLD).

use std::sync::OnceLock;

const LIST: &str = include_str!("public_suffix_list.dat");

/// The ASCII rules of the list: `(suffix, wildcard)`, where `*.ck` is `("ck", true)`.
/// Exception rules (`!www.ck`) are kept apart.
struct Rules {
    rules: Vec<(&'static str, bool)>,
    exceptions: Vec<&'static str>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules = Vec::new();
        let mut exceptions = Vec::new();
        for line in LIST.lines() {
            // A rule is the first whitespace-free part of a line; `//` starts a comment.
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") || !rule.is_ascii() {
                continue;
            }
            if let Some(e) = rule.strip_prefix('!') {
                exceptions.push(e);
            } else if let Some(w) = rule.strip_prefix("*.") {
                rules.push((w, true));
            } else {
                rules.push((rule, false));
            }
        }
        Rules { rules, exceptions }
    })
}

/// A public suffix equal to `base` or below it, if the list has one. `base`
/// is a lower-case DNS name; matching is by whole labels.
pub fn suffix_at_or_below(base: &str) -> Option<String> {
    let r = rules();
    let below = |s: &str| s == base || s.ends_with(&format!(".{base}"));
    // `*.X`: every name directly under X is a suffix, except the listed exceptions.
    for &(s, wildcard) in &r.rules {
        if wildcard {
            if let Some(parent) = base.split_once('.').map(|(_, p)| p) {
                if parent == s && !r.exceptions.contains(&base) {
                    return Some(base.to_owned());
                }
            }
            if below(s) {
                return Some(format!("*.{s}"));
            }
        } else if below(s) {
            return Some(s.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(suffix_at_or_below("com").as_deref(), Some("com"));
        assert_eq!(suffix_at_or_below("co.uk").as_deref(), Some("co.uk"));
        assert_eq!(
            suffix_at_or_below("github.io").as_deref(),
            Some("github.io")
        );
        assert!(suffix_at_or_below("example.com").is_none());
        assert!(suffix_at_or_below("github.com").is_none());
        // A suffix below the base: anyone can host under s3.amazonaws.com.
        assert!(suffix_at_or_below("amazonaws.com").is_some());
        // `*.ck` makes every name under ck a suffix, except `!www.ck`.
        assert_eq!(suffix_at_or_below("foo.ck").as_deref(), Some("foo.ck"));
        assert!(suffix_at_or_below("www.ck").is_none());
        // Whole labels only: "om" is a TLD but "com" does not end with ".om".
        assert!(suffix_at_or_below("m").is_none());
    }
}
