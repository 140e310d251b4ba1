//! The grammar boundary: capability strings in, typed [`Capability`] values out.
//!
//! This is the only module that sees pest types or raw capability text. The
//! grammar (`grammar/capability.pest`) does the recognising; the functions here
//! convert parse trees into validated values and turn parse failures into
//! coded errors whose span points at the offending characters.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use pest::iterators::Pair;
use pest::Parser as _;
use pest_derive::Parser;

use crate::capability::{
    AbsPath, Capability, ClockSource, DnsName, Endpoint, EnvActions, FsActions, FsPath, Glob, Host,
    Kind, Name, Port,
};
use crate::diag::{is_invisible, printable, Code};

#[derive(Parser)]
#[grammar = "../grammar/capability.pest"]
struct CapParser;

/// Longest capability string accepted, in bytes. Real capabilities are well
/// under 200 bytes; the bound keeps hostile inputs cheap to reject.
pub const MAX_CAPABILITY_LEN: usize = 4096;

/// A grammar error: a code, a message and the byte range of the capability
/// string it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapError {
    pub code: Code,
    pub message: String,
    pub span: Range<usize>,
    pub help: Option<String>,
}

impl CapError {
    fn new(code: Code, message: impl Into<String>, span: Range<usize>) -> CapError {
        CapError {
            code,
            message: message.into(),
            span,
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> CapError {
        self.help = Some(help.into());
        self
    }
}

/// One colon-separated segment, with its decoded text and where it sits in the raw string.
struct Segment<'a> {
    text: &'a str,
    /// Byte range of `text` inside the raw capability (inside the quotes if quoted).
    span: Range<usize>,
    quoted: bool,
    /// The segment's leaf rule as the capability's parse matched it (a `t_*`
    /// pair), or `None` if the segment was kept whole.
    parsed: Option<Pair<'a, Rule>>,
}

/// Parses one capability string.
pub fn parse_capability(raw: &str) -> Result<Capability, CapError> {
    if raw.len() > MAX_CAPABILITY_LEN {
        return Err(CapError::new(
            Code::CapTooLong,
            format!(
                "capability is {} bytes long; the limit is {MAX_CAPABILITY_LEN}",
                raw.len()
            ),
            0..0,
        ));
    }
    // U+2028/U+2029 are line breaks for JavaScript and many editors, though not controls.
    // Almost every capability is printable ASCII, which holds none of these, so
    // one cheap byte test spares the per-character check (a fold, not `all`, so
    // that it vectorises).
    let printable_ascii = raw
        .bytes()
        .fold(true, |ok, b| ok & matches!(b, b' '..=b'~'));
    let invisible = if printable_ascii {
        None
    } else {
        raw.char_indices()
            .find(|&(_, c)| is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}'))
    };
    if let Some((i, c)) = invisible {
        return Err(CapError::new(
            Code::CapChar,
            format!(
                "control or invisible character U+{:04X} at byte {i}",
                c as u32
            ),
            i..i + c.len_utf8(),
        ));
    }

    convert(raw, Rule::capability)
}

/// Parses `raw` with `rule` (`capability`, or `any_capability` in tests) and
/// converts it: the shape, the kind and the refinements, then each segment.
fn convert(raw: &str, rule: Rule) -> Result<Capability, CapError> {
    let top = CapParser::parse(rule, raw)
        .map_err(|e| structure_error(raw, error_pos(&e)))?
        .next()
        .expect("capability rule yields one pair");

    let mut kind_pair = None;
    let mut segments = Vec::new();
    let mut refinements = None;
    for pair in top.into_inner() {
        match pair.as_rule() {
            Rule::kind => kind_pair = Some(pair),
            Rule::segment => segments.push(segment(pair)),
            Rule::refinements => refinements = Some(pair),
            Rule::EOI => {}
            _ => segments.push(parsed_segment(pair)),
        }
    }
    let kind_pair = kind_pair.expect("capability always has a kind");
    let kind_span = kind_pair.as_span().start()..kind_pair.as_span().end();
    // A `?` inside quotes is text only in an assertion's description (the
    // segments after the id); anywhere else it is refused as before, ahead of
    // every other check.
    let description_from = if kind_pair.as_str() == "assert" {
        1
    } else {
        usize::MAX
    };
    for (i, s) in segments.iter().enumerate() {
        if s.quoted && i < description_from {
            if let Some(at) = s.text.find('?') {
                let pos = s.span.start + at;
                return Err(structure_error(raw, pos));
            }
        }
    }

    // Reference order: part count, then kind, then refinements, then kind-specific checks.
    if segments.is_empty() {
        return Err(CapError::new(
            Code::CapMalformed,
            format!("expected at least <kind>:<scope>, got {}", q(raw)),
            0..raw.len(),
        ));
    }
    let Some(kind) = Kind::parse(kind_pair.as_str()) else {
        return Err(CapError::new(
            Code::CapUnknownKind,
            format!("unknown capability kind {}", q(kind_pair.as_str())),
            kind_span,
        ));
    };
    let nested = match refinements {
        Some(r) => nested_sandbox(r, kind)?,
        None => None,
    };

    match kind {
        Kind::Fs => {
            let [actions, path] = exact::<2>(
                &segments,
                Code::CapFsShape,
                raw,
                "fs needs <actions>:<path>",
            )?;
            let actions = fs_actions(actions, raw)?;
            let seg = path;
            let path = fs_path(seg)?;
            if actions.closure().writable() {
                holds_system_source(&path, seg)?;
            }
            Ok(Capability::Fs { actions, path })
        }
        Kind::Net => {
            if !(2..=3).contains(&segments.len()) {
                return Err(shape(
                    Code::CapNetShape,
                    raw,
                    "net needs <actions>:<host>[:<port>]",
                )
                .help(if segments.len() > 3 {
                    "IPv6 hosts must be quoted: net:connect:\"2606:4700::1111\":443"
                } else {
                    Code::CapNetShape.help()
                }));
            }
            check_actions(&segments[0], raw, Kind::Net, &["connect"])?;
            let host = host(&segments[1])?;
            let port = match segments.get(2) {
                Some(p) => Some(port(p)?),
                None => None,
            };
            Ok(Capability::Net { host, port })
        }
        Kind::Exec => {
            let [actions, binary] = exact::<2>(
                &segments,
                Code::CapExecShape,
                raw,
                "exec needs <actions>:<binary>",
            )?;
            check_actions(actions, raw, Kind::Exec, &["spawn"])?;
            let binary = exec_binary(binary)?;
            Ok(Capability::Exec {
                binary,
                nested_sandbox: nested.unwrap_or(false),
            })
        }
        Kind::Env => {
            let [actions, name] = exact::<2>(
                &segments,
                Code::CapEnvShape,
                raw,
                "env needs <actions>:<name>",
            )?;
            let names = check_actions(actions, raw, Kind::Env, &["read", "inject"])?;
            let actions = EnvActions {
                read: names.contains(&"read"),
                inject: names.contains(&"inject"),
            };
            let name = env_name(name)?;
            Ok(Capability::Env { actions, name })
        }
        Kind::Ipc => {
            let endpoint = match segments.len() {
                2 => endpoint(&segments[1])?,
                // The unquoted forms `ipc:connect:unix:/p` and `ipc:connect:dbus:system`
                // are what the documentation always showed; accept them unambiguously.
                3 if !segments[1].quoted
                    && !segments[2].quoted
                    && matches!(segments[1].text, "unix" | "dbus") =>
                {
                    let span = segments[1].span.start..segments[2].span.end;
                    endpoint(&Segment {
                        text: &raw[span.clone()],
                        span,
                        quoted: false,
                        parsed: None,
                    })?
                }
                _ => {
                    return Err(shape(
                        Code::CapIpcShape,
                        raw,
                        "ipc needs <actions>:<endpoint>",
                    ))
                }
            };
            check_actions(&segments[0], raw, Kind::Ipc, &["connect"])?;
            Ok(Capability::Ipc { endpoint })
        }
        Kind::Clock => {
            let [source] = exact::<1>(&segments, Code::CapClockShape, raw, "clock needs <source>")?;
            let source = clock_source(source)?;
            Ok(Capability::Clock { source })
        }
        Kind::Assert => {
            let id = &segments[0];
            leaf(Rule::assert_id, id).map_err(|_| {
                CapError::new(
                    Code::CapAssertShape,
                    format!("assert needs <id>[:<description>], got {}", q(raw)),
                    nonempty(&id.span),
                )
            })?;
            let id_name = Name::new_unchecked(id.text.to_owned());
            // The reference joins everything after the id with ':' (quotes dropped).
            let description = if segments.len() > 1 {
                segments[1..]
                    .iter()
                    .map(|s| s.text)
                    .collect::<Vec<_>>()
                    .join(":")
            } else {
                String::new()
            };
            let description = if description.is_empty() {
                id_name.as_str().to_owned()
            } else {
                description
            };
            Ok(Capability::Assert {
                id: id_name,
                description,
            })
        }
    }
}

fn q(s: &str) -> String {
    format!("\"{}\"", printable(s))
}

fn nonempty(span: &Range<usize>) -> Range<usize> {
    if span.is_empty() {
        span.start..span.start
    } else {
        span.clone()
    }
}

fn error_pos(e: &pest::error::Error<Rule>) -> usize {
    match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
}

/// A failure of the top-level rule: always a quoting or `?` problem, because
/// bare segments accept everything else.
fn structure_error(raw: &str, pos: usize) -> CapError {
    let at = raw[pos..].chars().next();
    let span = pos..pos + at.map_or(0, char::len_utf8);
    let message = match at {
        Some('"') => "a quote must enclose a whole segment (e.g. \"2606:4700::1111\")".to_owned(),
        Some('?') => "`?` cannot appear inside quotes: it starts the refinements".to_owned(),
        None => "unterminated quote".to_owned(),
        Some(c) => format!("unexpected character {}", describe(c)),
    };
    CapError::new(Code::CapSyntax, message, span)
}

/// A segment kept whole.
fn segment(pair: Pair<'_, Rule>) -> Segment<'_> {
    let inner = pair.into_inner().next().expect("segment is quoted or bare");
    let quoted = match inner.as_rule() {
        Rule::bare => false,
        Rule::quoted => true,
        r => unreachable!("unexpected {r:?} in segment"),
    };
    let text = if quoted {
        inner.into_inner().next().expect("quoted has quoted_text")
    } else {
        inner
    };
    Segment {
        text: text.as_str(),
        span: text.as_span().start()..text.as_span().end(),
        quoted,
        parsed: None,
    }
}

/// A segment its leaf rule matched (a `t_*` pair, quotes included).
fn parsed_segment(pair: Pair<'_, Rule>) -> Segment<'_> {
    let (text, start, end) = (pair.as_str(), pair.as_span().start(), pair.as_span().end());
    let quoted = text.starts_with('"');
    let (text, span) = if quoted {
        (&text[1..text.len() - 1], start + 1..end - 1)
    } else {
        (text, start..end)
    };
    Segment {
        text,
        span,
        quoted,
        parsed: Some(pair),
    }
}

fn shape(code: Code, raw: &str, what: &str) -> CapError {
    CapError::new(code, format!("{what}, got {}", q(raw)), 0..raw.len())
}

fn exact<'s, 'a, const N: usize>(
    segments: &'s [Segment<'a>],
    code: Code,
    raw: &str,
    what: &str,
) -> Result<&'s [Segment<'a>; N], CapError> {
    segments.try_into().map_err(|_| shape(code, raw, what))
}

/// A segment's leaf rule's pair, with the offset its positions are relative
/// to: as the capability's parse matched it, else by running `rule` over the
/// segment alone, which on failure returns the absolute byte offset (in the
/// raw capability) where the leaf stopped matching.
fn leaf<'a>(rule: Rule, seg: &Segment<'a>) -> Result<(Pair<'a, Rule>, usize), usize> {
    // A pair is used only for the leaf rule it was matched with.
    let in_capability = match rule {
        Rule::actions => Rule::t_actions,
        Rule::fs_path => Rule::t_path,
        Rule::host => Rule::t_host,
        Rule::port => Rule::t_port,
        Rule::binary => Rule::t_program,
        Rule::env_name => Rule::t_env,
        Rule::endpoint => Rule::t_endpoint,
        Rule::clock_source => Rule::t_clock,
        Rule::assert_id => Rule::t_assert_id,
        r => unreachable!("{r:?} is not a leaf rule"),
    };
    if let Some(pair) = seg.parsed.as_ref().filter(|p| p.as_rule() == in_capability) {
        return Ok((pair.clone(), 0));
    }
    CapParser::parse(rule, seg.text)
        .map(|mut pairs| {
            (
                pairs.next().expect("leaf rule yields one pair"),
                seg.span.start,
            )
        })
        .map_err(|e| seg.span.start + error_pos(&e).min(seg.text.len()))
}

fn describe(c: char) -> String {
    if c == ' ' {
        "' ' (space)".to_owned()
    } else if c.is_ascii_graphic() {
        format!("'{c}'")
    } else if c.is_alphanumeric() {
        format!("'{c}' (U+{:04X})", c as u32)
    } else {
        // Combining marks and symbols would attach to the quotes or mislead: code point only.
        format!("U+{:04X}", c as u32)
    }
}

/// The character at an absolute position, with its span, for error messages.
fn char_at(raw: &str, pos: usize) -> (Option<char>, Range<usize>) {
    let c = raw.get(pos..).and_then(|s| s.chars().next());
    (c, pos..pos + c.map_or(0, char::len_utf8))
}

// ---------------------------------------------------------------- actions

fn check_actions<'a>(
    seg: &Segment<'a>,
    raw: &str,
    kind: Kind,
    allowed: &[&'static str],
) -> Result<Vec<&'static str>, CapError> {
    if seg.text.is_empty() {
        return Err(CapError::new(
            Code::CapActionsEmpty,
            format!("{kind} requires actions in {}", q(raw)),
            seg.span.clone(),
        ));
    }
    let unknown = |item: &str, span: Range<usize>| {
        CapError::new(
            Code::CapActionUnknown,
            format!("{kind} action {} not allowed", q(item.trim())),
            span,
        )
        .help(format!("allowed {kind} actions: {}", allowed.join(", ")))
    };
    let (pair, base) = leaf(Rule::actions, seg).map_err(|pos| {
        // Name the comma-separated item the parse stopped in.
        let rel = pos - seg.span.start;
        let start = seg.text[..rel].rfind(',').map_or(0, |i| i + 1);
        let end = seg.text[rel..]
            .find(',')
            .map_or(seg.text.len(), |i| rel + i);
        unknown(
            &seg.text[start..end],
            seg.span.start + start..seg.span.start + end,
        )
    })?;
    actions_from_items(pair.into_inner(), base, allowed).map_err(|(item, span)| unknown(item, span))
}

/// Converts `action` pairs (positions relative to `base`); an unknown
/// action is returned with its absolute span.
fn actions_from_items<'a>(
    items: impl Iterator<Item = Pair<'a, Rule>>,
    base: usize,
    allowed: &[&'static str],
) -> Result<Vec<&'static str>, (&'a str, Range<usize>)> {
    let mut out = Vec::new();
    // `action_item` is silent: its `action` each.
    for action in items.filter(|p| p.as_rule() == Rule::action) {
        let span = base + action.as_span().start()..base + action.as_span().end();
        let Some(name) = allowed.iter().find(|a| **a == action.as_str()) else {
            return Err((action.as_str(), span));
        };
        if !out.contains(name) {
            out.push(*name);
        }
    }
    Ok(out)
}

const FS_ACTIONS: &[&str] = &["read", "write", "create", "delete"];

fn fs_actions(seg: &Segment<'_>, raw: &str) -> Result<FsActions, CapError> {
    let names = check_actions(seg, raw, Kind::Fs, FS_ACTIONS)?;
    Ok(names
        .iter()
        .filter_map(|n| FsActions::from_name(n))
        .fold(FsActions::default(), FsActions::union))
}

// ---------------------------------------------------------------- paths

const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}'];

fn fs_path(seg: &Segment<'_>) -> Result<FsPath, CapError> {
    if !seg.text.starts_with('/') {
        return Err(CapError::new(
            Code::CapFsRelative,
            format!("fs path must be absolute: {}", q(seg.text)),
            nonempty(&seg.span),
        ));
    }
    let (pair, base) = leaf(Rule::fs_path, seg).map_err(|pos| path_error(seg, pos))?;
    let abs = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::abs_path)
        .expect("fs_path has abs_path");
    let fs = abs_path(abs, base)?;
    reserved(&fs.path, seg)?;
    socket_dir(&fs, seg)?;
    Ok(fs)
}

/// A well-known socket directory ([`SOCKET_DIRS`]) through `fs:`: the directory
/// itself, or a glob below it, binds every socket in it (every X display, the
/// system bus), which `unix:` refuses as directory-sized. One file below it (one
/// socket, like `unix:/tmp/.X11-unix/X0`) is accepted.
fn socket_dir(fs: &FsPath, seg: &Segment<'_>) -> Result<(), CapError> {
    let p = fs.path.as_str();
    let real = host_path(p);
    let Some(dir) = SOCKET_DIRS.iter().find(|d| tree_holds(d, &real)) else {
        return Ok(());
    };
    if real.as_ref() != *dir && fs.glob == Glob::None {
        return Ok(());
    }
    Err(CapError::new(
        Code::CapFsReserved,
        format!(
            "{} binds the socket directory {dir}: every socket in it (every X display, every bus) would be reachable",
            named(p, &real)
        ),
        seg.span.clone(),
    )
    .help("declare one socket instead: ipc:connect:x11 (one display), ipc:connect:dbus:system, or ipc:connect:unix:/path/to/one.sock"))
}

/// Host paths the built-in targets bind read-only beside the declared ones:
/// bwrap's baseline, systemd's certificates, the `clock:tzdata` files (and
/// `/etc/localtime`'s link into the zone database; srt also reads
/// `/etc/timezone`), srt's `system_read` default. docs/security.md lists them.
pub const SYSTEM_BIND_SOURCES: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/timezone",
];

/// The directories of root's default PATH outside `/usr/bin` and `/usr/sbin`
/// (which [`SYSTEM_BIND_SOURCES`] holds): `capgate run` takes its host tools
/// from all of them (`run::TOOL_DIRS`), and so do the host's own root
/// commands. A writable path that is, holds or lies in one is refused: a file
/// in it is a command root runs. (A writable file below `/usr/bin` is root's,
/// which the sandbox's uid, never 0, cannot write; `capgate run` refuses its
/// bind as well.)
pub const TOOL_DIRS_RESERVED: &[&str] = &["/usr/local/sbin", "/usr/local/bin"];

/// A writable path that holds (or is) a [`SYSTEM_BIND_SOURCES`] entry, in any
/// spelling the host may walk: the sandbox could replace that entry with a
/// symlink, and the read-only bind of it at the next start would follow it
/// (bwrap's `/bin` is walked through `/usr`; oci, docker and systemd mount the
/// tzdata files over a writable `/etc`). Also a writable path at, above or
/// in one of [`TOOL_DIRS_RESERVED`].
fn holds_system_source(fs: &FsPath, seg: &Segment<'_>) -> Result<(), CapError> {
    // Every writable capability is checked: the sources' spellings are worked out once.
    static SOURCES: std::sync::LazyLock<Vec<(&str, String)>> = std::sync::LazyLock::new(|| {
        SYSTEM_BIND_SOURCES
            .iter()
            .flat_map(|s| spellings(s).into_iter().map(move |sp| (*s, sp)))
            .collect()
    });
    let p = fs.path.as_str();
    let real = host_path(p);
    let tool_dir = TOOL_DIRS_RESERVED
        .iter()
        .map(|d| (*d, host_path(d)))
        .find(|(_, d)| tree_holds(&real, d) || tree_holds(d, &real));
    if let Some((dir, d)) = tool_dir {
        return Err(CapError::new(
            Code::CapFsReserved,
            format!(
                "{} is writable and {} {dir}, where the host's root commands and capgate run's host tools come from: the server could plant or rewrite a command that root runs outside the sandbox",
                named(p, &real),
                if real == d {
                    "is"
                } else if tree_holds(&real, &d) {
                    "holds"
                } else {
                    "lies in"
                }
            ),
            seg.span.clone(),
        )
        .help("declare writable only directories outside the host's PATH (a read-only declaration is fine)"));
    }
    let Some((source, spelling)) = SOURCES.iter().find(|(_, sp)| tree_holds(&real, sp)) else {
        return Ok(());
    };
    let via = if spelling == source {
        String::new()
    } else {
        format!(" (as {spelling})")
    };
    Err(CapError::new(
        Code::CapFsReserved,
        format!(
            "{} is writable and {} {source}{via}, which sandboxes bind read-only from the host beside the declared paths: the server could replace it with a symlink that the next start follows",
            named(p, &real),
            if *real == **spelling { "is" } else { "holds" }
        ),
        seg.span.clone(),
    )
    .help("declare writable only the directories below it that the server writes (a read-only declaration of it is fine)"))
}

/// Explains why a path leaf failed at `pos`, by looking at the segment around it.
fn path_error(seg: &Segment<'_>, pos: usize) -> CapError {
    let text = seg.text;
    // The leaf stops after its longest good prefix: at a `/`, the segment at
    // fault is the one after it.
    let mut rel = pos - seg.span.start;
    if text[rel..].starts_with('/') {
        rel += 1;
    }
    let start = text[..rel].rfind('/').map_or(0, |i| i + 1);
    let end = text[rel..].find('/').map_or(text.len(), |i| rel + i);
    let part = &text[start..end];
    let abs = |r: Range<usize>| seg.span.start + r.start..seg.span.start + r.end;
    if part.contains(GLOB_CHARS) {
        return CapError::new(
            Code::CapFsGlob,
            format!("glob in {} is not a whole last segment", q(part)),
            abs(start..end),
        );
    }
    if let Some((i, c)) = part
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "._-+@~".contains(c)))
    {
        return CapError::new(
            Code::CapFsPath,
            format!("character {} is not allowed in paths", describe(c)),
            abs(start + i..start + i + c.len_utf8()),
        );
    }
    let message = if rel >= text.len() && text.ends_with('/') {
        "path ends with `/`"
    } else {
        "path contains an empty segment (`//`)"
    };
    let at = rel.saturating_sub(1)..(rel + 1).min(text.len());
    CapError::new(Code::CapFsPath, message, abs(at))
        .help("write /dir for exactly the directory, /dir/** for everything below it, or /dir/* for its children")
}

/// Converts an `abs_path` pair; `base` is the absolute offset of the text it was parsed from.
fn abs_path(pair: Pair<'_, Rule>, base: usize) -> Result<FsPath, CapError> {
    // The rule admits `/` alone, or `/`-separated segments that are each a
    // name, `*`, `**`, `.` or `..`.
    let text = pair.as_str();
    let mut at = base + pair.as_span().start() + 1;
    let mut names: Vec<&str> = Vec::new();
    let mut glob = Glob::None;
    let mut segs = text[1..].split('/').filter(|s| !s.is_empty()).peekable();
    while let Some(seg) = segs.next() {
        let span = at..at + seg.len();
        at = span.end + 1;
        match seg {
            "**" | "*" if segs.peek().is_none() => {
                glob = if seg == "**" {
                    Glob::Recursive
                } else {
                    Glob::Children
                };
            }
            "**" | "*" => {
                return Err(CapError::new(
                    Code::CapFsGlob,
                    format!("glob {} in the middle of a path", q(seg)),
                    span,
                ))
            }
            "." | ".." => {
                return Err(CapError::new(
                    Code::CapFsPath,
                    format!("path segment {} is not normalised", q(seg)),
                    span,
                ))
            }
            name => names.push(name),
        }
    }
    let mut path = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
    for n in &names {
        path.push('/');
        path.push_str(n);
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok(FsPath {
        path: AbsPath::new_unchecked(path),
        glob,
    })
}

/// Trees the sandbox provides itself; the host's must never be bound over them.
const SANDBOX_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Well-known host paths that are another name for another host path (the merged-/usr
/// links of current Debian, Ubuntu, Fedora and Arch; the [`PARTIAL_ALIASES`] are links only
/// on some, and fold without merging). A bind source is resolved on
/// the host, so every check that compares bind sources runs on the path after this
/// mapping: the reserved-path and engine-socket checks, for `fs:` and `ipc:` alike, and
/// the nesting of fs facts and sockets (a read-only path under a writable one is folded
/// into it whatever its spelling: bound on its own, it would follow a symlink the server
/// planted). Applied repeatedly (`/var/run/shm` → `/run/shm` → `/dev/shm`, `/sbin` →
/// `/usr/sbin` → `/usr/bin`). docs/security.md lists this table.
pub const HOST_ALIASES: &[(&str, &str)] = &[
    ("/var/run", "/run"),
    ("/var/lock", "/run/lock"),
    ("/run/shm", "/dev/shm"),
    ("/etc/mtab", "/proc/self/mounts"),
    ("/bin", "/usr/bin"),
    ("/sbin", "/usr/sbin"),
    ("/usr/sbin", "/usr/bin"),
    ("/lib", "/usr/lib"),
    ("/lib32", "/usr/lib32"),
    ("/libx32", "/usr/libx32"),
    ("/lib64", "/usr/lib64"),
    ("/usr/lib64", "/usr/lib"),
    ("/usr/tmp", "/var/tmp"),
    ("/var/spool/mail", "/var/mail"),
];

/// File names of container-engine (and libvirt's) API sockets, refused
/// wherever they are: access to any of them is root on the host.
pub const ENGINE_SOCKETS: &[&str] = &[
    "docker.sock",
    "podman.sock",
    "containerd.sock",
    "containerd.sock.ttrpc",
    "crio.sock",
    "dockershim.sock",
    "cri-dockerd.sock",
    "buildkitd.sock",
    "balena-engine.sock",
    "balena.sock",
    "k3s.sock",
    "libvirt-sock",
    "virtqemud-sock",
];

/// Where container engines keep their sockets, and the state directories
/// whose files are other containers' filesystems and secrets (after
/// [`HOST_ALIASES`]; `*` is one path segment). These paths, everything below
/// them and every directory above them (`/run`, `/var/run`, `/run/user/1000`,
/// `/var/lib`, ...) are refused.
pub const ENGINE_PATHS: &[&str] = &[
    "/run/docker.sock",
    "/run/docker",
    "/run/containerd",
    "/run/podman",
    "/run/crio",
    "/run/buildkit",
    "/run/k3s",
    "/run/dockershim.sock",
    "/run/cri-dockerd.sock",
    "/run/user/*/docker.sock",
    "/run/user/*/docker",
    "/run/user/*/podman",
    "/run/user/*/containerd",
    "/run/user/*/containerd-rootless",
    "/run/user/*/buildkit",
    "/var/lib/lxd",
    "/var/snap/lxd",
    "/var/lib/incus",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/run/balena-engine.sock",
    "/run/balena.sock",
    "/run/balena-engine",
    "/run/k0s",
    "/run/containers",
    "/run/runc",
    "/run/crun",
    "/run/lxc",
    "/run/user/*/containers",
    "/run/user/*/libpod",
    "/run/user/*/runc",
    "/run/user/*/crun",
    "/var/lib/balena-engine",
    "/var/lib/balena",
    "/var/snap/docker",
    "/var/lib/k0s",
    "/var/lib/rancher",
    "/var/lib/kubelet",
    "/var/lib/lxc",
    "/var/lib/machines",
    "/var/lib/buildkit",
    "/var/lib/nerdctl",
    "/run/incus",
    "/run/libvirt",
    "/run/snapd.socket",
];

/// Engine state kept in a user's home (rootless podman and Docker): refused
/// with everything below, but not the directories above (a home directory
/// may be declared; its engine state may not).
pub const ENGINE_HOME_PATHS: &[&str] = &[
    "/home/*/.local/share/containers",
    "/home/*/.local/share/docker",
    "/root/.local/share/containers",
    "/root/.local/share/docker",
    "/home/*/.docker/run",
    "/root/.docker/run",
];

/// [`AbsPath::is_ancestor_or_self`] on text, so checking every capability
/// against [`SANDBOX_TREES`] allocates nothing.
pub(crate) fn tree_holds(top: &str, path: &str) -> bool {
    path.strip_prefix(top)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The aliases of [`HOST_ALIASES`] that are links on some distributions only:
/// `/usr/sbin` is `/usr/bin` on Arch and Fedora 42, a directory of its own on
/// Debian; `/usr/lib64` is `/usr/lib` on Arch, a directory of its own on Debian
/// and Fedora. Nesting across one of them folds (a read-only path inside a
/// writable one gets no bind of its own, whichever host it is), but two
/// spellings never merge into one fact: bound under one spelling with the
/// other's grant, it would widen a directory that is separate on some hosts.
pub const PARTIAL_ALIASES: &[(&str, &str)] =
    &[("/usr/sbin", "Arch and Fedora 42"), ("/usr/lib64", "Arch")];

/// The host path `path` names, after [`HOST_ALIASES`]; borrowed when no alias applies.
pub fn host_path(path: &str) -> std::borrow::Cow<'_, str> {
    resolve(path, true)
}

/// [`host_path`] without [`PARTIAL_ALIASES`]: the host path `path` names on
/// every distribution.
pub fn sure_host_path(path: &str) -> std::borrow::Cow<'_, str> {
    resolve(path, false)
}

fn resolve(path: &str, partial: bool) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(path);
    // The table has no cycles and each round applies one alias, so one round per alias suffices.
    for _ in 0..HOST_ALIASES.len() {
        let Some((alias, real)) = HOST_ALIASES.iter().find(|(a, _)| {
            tree_holds(a, &out) && (partial || !PARTIAL_ALIASES.iter().any(|(p, _)| p == a))
        }) else {
            break;
        };
        out = std::borrow::Cow::Owned(format!("{real}{}", &out[alias.len()..]));
    }
    out
}

/// The alias of [`HOST_ALIASES`] whose link points either way, depending on
/// the distribution: Debian links `/var/spool/mail` to `/var/mail`, Fedora and
/// Arch `/var/mail` to `/var/spool/mail`.
const EITHER_WAY: &[&str] = &["/var/spool/mail"];

/// Whether [`spellings`] of `path` has more than the path itself: a check
/// without allocation, for the many paths no alias touches.
pub fn has_other_spellings(path: &str) -> bool {
    HOST_ALIASES
        .iter()
        .any(|(a, r)| tree_holds(a, path) || (EITHER_WAY.contains(a) && tree_holds(r, path)))
}

/// Every spelling the host may walk to reach `path`: the path as written, each
/// step of [`HOST_ALIASES`] from it (`/sbin/x`, `/usr/sbin/x`, `/usr/bin/x`),
/// and for an [`EITHER_WAY`] pair the other spelling too. A bind whose source
/// is walked through a directory the sandbox can write follows whatever the
/// sandbox leaves there (a link replaced by a symlink to anywhere), so nesting
/// is checked on every spelling, not only on the last.
pub fn spellings(path: &str) -> Vec<String> {
    if !has_other_spellings(path) {
        return vec![path.to_owned()];
    }
    let mut out = vec![path.to_owned()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        for (alias, real) in HOST_ALIASES {
            let mut step = |from: &str, to: &str| {
                if tree_holds(from, &p) {
                    let next = format!("{to}{}", &p[from.len()..]);
                    if !out.contains(&next) {
                        out.push(next);
                    }
                }
            };
            step(alias, real);
            if EITHER_WAY.contains(alias) {
                step(real, alias);
            }
        }
        i += 1;
    }
    out
}

/// Whether `path` (a host path after aliases) is an engine location of
/// [`ENGINE_PATHS`], lies below one or contains one; returns that location.
fn engine_path(path: &str) -> Option<&'static str> {
    // The tables split into segments once: every capability is checked.
    /// A pattern and its segments.
    type Split = Vec<(&'static str, Vec<&'static str>)>;
    static SEGMENTS: std::sync::LazyLock<[Split; 2]> = std::sync::LazyLock::new(|| {
        let split = |table: &[&'static str]| {
            table
                .iter()
                .map(|p| (*p, p.split('/').filter(|s| !s.is_empty()).collect()))
                .collect()
        };
        [split(ENGINE_PATHS), split(ENGINE_HOME_PATHS)]
    });
    let [engine, home] = &*SEGMENTS;
    let mine: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let same = |m: &&str, t: &&str| *t == "*" || m == t;
    engine
        .iter()
        // Compared up to the shorter of the two: equal there means one holds the other.
        .find(|(_, theirs)| mine.iter().zip(theirs).all(|(m, t)| same(m, t)))
        .or_else(|| {
            // At or below only: the pattern is a prefix of the path.
            home.iter().find(|(_, theirs)| {
                mine.len() >= theirs.len() && mine.iter().zip(theirs).all(|(m, t)| same(m, t))
            })
        })
        .map(|(pattern, _)| *pattern)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// Why a host path (for `fs:`, or a unix socket for `ipc:`) can never be
/// granted, checked on the path after [`HOST_ALIASES`].
enum Refusal {
    Root,
    SandboxTree(&'static str),
    EngineSocket,
    EngineDir(&'static str),
}

fn refusal(declared: &str) -> Option<(Refusal, std::borrow::Cow<'_, str>)> {
    let real = host_path(declared);
    let p: &str = &real;
    let why = if p == "/" {
        Refusal::Root
    } else if let Some(top) = SANDBOX_TREES.iter().find(|top| tree_holds(top, p)) {
        Refusal::SandboxTree(top)
    } else if ENGINE_SOCKETS.contains(&file_name(p)) {
        Refusal::EngineSocket
    } else if let Some(e) = engine_path(p) {
        Refusal::EngineDir(e)
    } else {
        return None;
    };
    Some((why, real))
}

/// `"/run/shm" (the host's /dev/shm)` or just `"/dev/shm"`.
fn named(declared: &str, real: &str) -> String {
    if declared == real {
        q(declared)
    } else {
        format!("{} (the host's {})", q(declared), printable(real))
    }
}

fn reserved(path: &AbsPath, seg: &Segment<'_>) -> Result<(), CapError> {
    let p = path.as_str();
    let Some((why, real)) = refusal(p) else {
        return Ok(());
    };
    let message = match why {
        Refusal::Root => format!(
            "{} is the host root: binding it would expose every host file",
            named(p, &real)
        ),
        Refusal::SandboxTree(top) => format!(
            "{} lies under {top}, which belongs to the sandbox; binding the host's would defeat its namespaces",
            named(p, &real)
        ),
        Refusal::EngineSocket => format!(
            "{} is a container-engine socket: access to it is root on the host (a read-only bind still lets a program connect)",
            named(p, &real)
        ),
        Refusal::EngineDir(e) => format!(
            "{} is, holds or lies in a container-engine location ({e}): its sockets and state are root on the host",
            named(p, &real)
        ),
    };
    let err = CapError::new(Code::CapFsReserved, message, seg.span.clone());
    Err(match why {
        Refusal::EngineSocket | Refusal::EngineDir(_) => err.help(
            "a container engine's API is root on the host; declare the server's own directories and sockets, never an engine's",
        ),
        Refusal::Root | Refusal::SandboxTree(_) => err,
    })
}

// ---------------------------------------------------------------- net

fn host(seg: &Segment<'_>) -> Result<Host, CapError> {
    let bad = |message: String, span: Range<usize>| CapError::new(Code::CapNetHost, message, span);
    if seg.text.is_empty() {
        return Err(bad("empty host".to_owned(), seg.span.clone()));
    }
    let (pair, _) = leaf(Rule::host, seg).map_err(|pos| {
        let (c, span) = char_at_seg(seg, pos);
        match c {
            Some(c) => bad(
                format!("character {} is not allowed in a host", describe(c)),
                span,
            ),
            None if seg.text.ends_with('.') => bad(
                "a host name cannot end with '.'".to_owned(),
                seg.span.end - 1..seg.span.end,
            ),
            None => bad(
                format!("host {} is incomplete", q(seg.text)),
                seg.span.clone(),
            ),
        }
    })?;
    let inner = pair.into_inner().next().expect("host has one child");
    host_from(inner, seg)
}

/// Converts the alternative a host rule matched; `seg` is the host's text and span.
fn host_from(inner: Pair<'_, Rule>, seg: &Segment<'_>) -> Result<Host, CapError> {
    match inner.as_rule() {
        Rule::host_any => Ok(Host::Any),
        Rule::host_wildcard => {
            let name = inner.into_inner().next().expect("wildcard has dns_name");
            Ok(Host::Wildcard(dns_name(name.as_str(), seg)?))
        }
        Rule::dns_name => Ok(Host::Name(dns_name(inner.as_str(), seg)?)),
        Rule::ipv4 => Ok(Host::V4(ipv4_from(seg)?)),
        Rule::ipv6 => Ok(Host::V6(ipv6_from(seg)?)),
        r => unreachable!("unexpected {r:?} in host"),
    }
}

/// Converts a host that matched `ipv4`.
fn ipv4_from(seg: &Segment<'_>) -> Result<Ipv4Addr, CapError> {
    let addr: Ipv4Addr = seg.text.parse().expect("grammar admits only valid IPv4");
    ipv4_destination(addr, seg)?;
    Ok(addr)
}

/// Converts a host that matched `ipv6`.
fn ipv6_from(seg: &Segment<'_>) -> Result<Ipv6Addr, CapError> {
    let addr: Ipv6Addr = seg.text.parse().map_err(|_| {
        CapError::new(
            Code::CapNetHost,
            format!("{} is not a valid IPv6 address", q(seg.text)),
            seg.span.clone(),
        )
    })?;
    ipv6_destination(addr, seg)?;
    Ok(addr)
}

fn char_at_seg(seg: &Segment<'_>, pos: usize) -> (Option<char>, Range<usize>) {
    let rel = pos - seg.span.start;
    let (c, r) = char_at(seg.text, rel);
    (c, seg.span.start + r.start..seg.span.start + r.end)
}

fn dns_name(name: &str, seg: &Segment<'_>) -> Result<DnsName, CapError> {
    let bad = |m: String| CapError::new(Code::CapNetHost, m, seg.span.clone());
    if name.len() > 253 {
        return Err(bad(format!(
            "host name is {} bytes; DNS allows 253",
            name.len()
        )));
    }
    // One pass over the labels: every capability with a host name comes here.
    let mut all_numeric = true;
    let mut last = "";
    for l in name.split('.') {
        if l.len() > 63 {
            return Err(bad(format!(
                "DNS label {} is longer than 63 characters",
                q(l)
            )));
        }
        all_numeric &= l.bytes().all(|b| b.is_ascii_digit());
        last = l;
    }
    if all_numeric {
        return Err(bad(format!("{} is not a valid IPv4 address (four decimal octets 0-255, no leading zeros) nor a DNS name", q(name))));
    }
    // A last label that is a number makes resolvers (inet_aton) and URL parsers
    // read the whole name as an IPv4 address in another notation: 0x7f.0.0.1 and
    // 1.0x7f are 127.x addresses. No real top-level domain is numeric.
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "{} ends in a number, so resolvers read it as an IPv4 address in another notation; write the address as four decimal octets",
            q(name)
        )));
    }
    Ok(DnsName::new_unchecked(name.to_ascii_lowercase()))
}

fn special(seg: &Segment<'_>, what: &str) -> CapError {
    CapError::new(
        Code::CapNetHostSpecial,
        format!(
            "{} is {what}, not a destination that can be granted",
            q(seg.text)
        ),
        seg.span.clone(),
    )
}

fn ipv4_destination(a: Ipv4Addr, seg: &Segment<'_>) -> Result<(), CapError> {
    let o = a.octets();
    if o[0] == 0 {
        Err(special(
            seg,
            "in 0.0.0.0/8 (\"this network\"; 0.0.0.0 reaches the host's loopback)",
        ))
    } else if a.is_broadcast() {
        Err(special(seg, "the broadcast address"))
    } else if a.is_multicast() {
        Err(special(seg, "a multicast address"))
    } else if o[0] >= 240 {
        Err(special(seg, "in the reserved range 240.0.0.0/4"))
    } else {
        Ok(())
    }
}

fn ipv6_destination(a: Ipv6Addr, seg: &Segment<'_>) -> Result<(), CapError> {
    let s = a.segments();
    if a.is_unspecified() {
        Err(special(seg, "the unspecified address"))
    } else if a.is_multicast() {
        Err(special(seg, "a multicast address"))
    } else if a.to_ipv4_mapped().is_some() {
        Err(special(seg, "an IPv4-mapped address").help("write the IPv4 address itself"))
    } else if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        Err(
            special(seg, "an IPv4-translated address (::ffff:0:a.b.c.d)")
                .help("write the IPv4 address itself"),
        )
    } else if s[..6] == [0; 6] && !a.is_loopback() {
        Err(special(seg, "an IPv4-compatible address (deprecated)")
            .help("write the IPv4 address itself"))
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        Err(special(seg, "a NAT64-translated address").help("write the IPv4 address itself"))
    } else {
        Ok(())
    }
}

fn port(seg: &Segment<'_>) -> Result<Port, CapError> {
    let bad = || {
        CapError::new(
            Code::CapNetPort,
            format!("net port out of range: {}", q(seg.text)),
            nonempty(&seg.span),
        )
    };
    leaf(Rule::port, seg).map_err(|_| bad())?;
    // At most five digits, no leading zero (the rule): parse, then range-check.
    if seg.text.len() > 5 {
        return Err(bad());
    }
    seg.text
        .parse::<u32>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .and_then(Port::new)
        .ok_or_else(bad)
}

// ---------------------------------------------------------------- exec, env

fn exec_binary(seg: &Segment<'_>) -> Result<Name, CapError> {
    if seg.text.contains('/') {
        return Err(CapError::new(
            Code::CapExecPath,
            format!("exec binary is a basename only: {}", q(seg.text)),
            seg.span.clone(),
        ));
    }
    let (pair, _) = leaf(Rule::binary, seg).map_err(|pos| {
        let (c, span) = char_at_seg(seg, pos);
        let message = match c {
            _ if seg.text.is_empty() => "exec binary is empty".to_owned(),
            Some(c) => format!("character {} is not allowed in a program name", describe(c)),
            None => format!("invalid program name {}", q(seg.text)),
        };
        CapError::new(
            Code::CapExecName,
            message,
            if seg.text.is_empty() {
                seg.span.clone()
            } else {
                span
            },
        )
    })?;
    let program = pair.into_inner().next().expect("binary has program");
    Ok(Name::new_unchecked(program.as_str().to_owned()))
}

/// Why an env name is refused (`CAP_ENV_DANGEROUS`). The docker target
/// forwards the launcher's own value of a declared name (`--env NAME`) and
/// bwrap takes whatever the host sets, so a refused name is refused for every
/// target: whoever controls the value would control the sandboxed program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnvCategory {
    /// The dynamic loader or an interpreter loads code from a chosen path, or
    /// runs code or options given in the value.
    CodeLoading,
    /// The value names a command that programs run (askpass helpers, editors,
    /// pagers, ssh commands, shell hooks).
    CommandHook,
    /// The value points a program at configuration that can run commands or load modules.
    ConfigCode,
    /// The value changes which TLS certificates are trusted or turns verification off.
    TlsTrust,
    /// The value redirects traffic, name resolution or the files a program reads and writes.
    Redirection,
}

impl EnvCategory {
    pub const ALL: [EnvCategory; 5] = [
        EnvCategory::CodeLoading,
        EnvCategory::CommandHook,
        EnvCategory::ConfigCode,
        EnvCategory::TlsTrust,
        EnvCategory::Redirection,
    ];

    /// The category's name, as messages and docs/security.md write it.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvCategory::CodeLoading => "code loading",
            EnvCategory::CommandHook => "command hook",
            EnvCategory::ConfigCode => "config that runs code",
            EnvCategory::TlsTrust => "TLS weakening",
            EnvCategory::Redirection => "traffic or file redirection",
        }
    }
}

/// One refused env name, or a family of names sharing a prefix.
#[derive(Debug, Clone, Copy)]
pub struct DangerousEnv {
    /// The name, or the prefix when `prefix` is set (`LD_` stands for `LD_*`).
    pub name: &'static str,
    pub prefix: bool,
    pub category: EnvCategory,
    /// What a value can do, in a few words.
    pub reason: &'static str,
}

const fn one(name: &'static str, category: EnvCategory, reason: &'static str) -> DangerousEnv {
    DangerousEnv {
        name,
        prefix: false,
        category,
        reason,
    }
}

const fn family(name: &'static str, category: EnvCategory, reason: &'static str) -> DangerousEnv {
    DangerousEnv {
        name,
        prefix: true,
        category,
        reason,
    }
}

use EnvCategory::{
    CodeLoading as Load, CommandHook as Hook, ConfigCode as Conf, Redirection as Redir,
    TlsTrust as Tls,
};

/// Every refused env name, by category. docs/security.md lists each with its
/// category and reason (a test keeps the two equal).
pub const DANGEROUS_ENV: &[DangerousEnv] = &[
    // ---- code loading: the loader, libc and interpreters
    family("LD_", Load, "the dynamic loader preloads or finds libraries (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT)"),
    family("DYLD_", Load, "the macOS loader inserts libraries"),
    family("GCONV_", Load, "glibc loads iconv modules from GCONV_PATH"),
    family("MALLOC_", Load, "glibc allocator hooks and trace files"),
    family("GLIBC_", Load, "glibc tunables (GLIBC_TUNABLES) change allocator and loader behaviour"),
    one("GETCONF_DIR", Load, "getconf executes programs from this directory"),
    one("LOCPATH", Load, "glibc loads locale data (parsed binary files) from this path"),
    one("NLSPATH", Load, "message catalogs with format strings are loaded from this path"),
    one("PYTHONPATH", Load, "python imports modules from these directories first"),
    one("PYTHONHOME", Load, "python loads its standard library from this directory"),
    one("PYTHONSTARTUP", Load, "python runs this file at interactive startup"),
    one("PYTHONINSPECT", Load, "python enters an interactive prompt after the script"),
    one("PYTHONUSERBASE", Load, "python imports site-packages (and .pth files) from this base"),
    one("PYTHONPLATLIBDIR", Load, "python loads its platform library directory from this name"),
    one("PYTHONPYCACHEPREFIX", Load, "python reads cached bytecode from this tree"),
    one("PYTHONWARNINGS", Load, "a warning filter's category imports any module"),
    one("PYTHONBREAKPOINT", Load, "breakpoint() imports and calls the named callable"),
    one("NODE_OPTIONS", Load, "node takes --require/--import/--loader from it: code run at startup"),
    one("NODE_PATH", Load, "node resolves modules from these directories"),
    one("NODE_REPL_EXTERNAL_MODULE", Load, "node loads this module instead of the REPL"),
    family("PERL5", Load, "perl takes options (-M modules) and library paths from PERL5OPT, PERL5LIB, PERL5DB"),
    one("PERLLIB", Load, "perl loads modules from these directories"),
    one("RUBYOPT", Load, "ruby takes options (-r libraries) from it"),
    one("RUBYLIB", Load, "ruby loads libraries from these directories"),
    one("GEM_PATH", Load, "rubygems loads gems from these directories"),
    one("GEM_HOME", Load, "rubygems loads and installs gems here"),
    one("BUNDLE_GEMFILE", Load, "bundler evaluates this Gemfile, which is ruby code"),
    one("JAVA_TOOL_OPTIONS", Load, "the JVM takes options (-javaagent) from it"),
    one("_JAVA_OPTIONS", Load, "the JVM takes options (-javaagent) from it"),
    one("JDK_JAVA_OPTIONS", Load, "the java launcher takes options (-javaagent) from it"),
    one("CLASSPATH", Load, "the JVM loads classes from these paths"),
    family("LUA_PATH", Load, "lua loads modules from these paths (also LUA_PATH_5_x)"),
    family("LUA_CPATH", Load, "lua loads native modules from these paths (also LUA_CPATH_5_x)"),
    family("LUA_INIT", Load, "lua runs this code or file at startup (also LUA_INIT_5_x)"),
    one("DOTNET_STARTUP_HOOKS", Load, ".NET loads and runs these assemblies at startup"),
    one("DOTNET_ADDITIONAL_DEPS", Load, ".NET loads extra dependency manifests"),
    family("CORECLR_", Load, ".NET Core loads a profiler library (CORECLR_PROFILER_PATH)"),
    family("COR_", Load, ".NET Framework loads a profiler library (COR_PROFILER_PATH)"),
    family("ERL_", Load, "the Erlang VM takes flags (-eval, -s) and library paths from ERL_AFLAGS, ERL_ZFLAGS, ERL_LIBS"),
    one("OPENSSL_ENGINES", Load, "OpenSSL loads engine libraries from this directory"),
    one("OPENSSL_MODULES", Load, "OpenSSL 3 loads provider libraries from this directory"),
    one("GIT_EXEC_PATH", Load, "git runs its subcommands from this directory"),
    one("JAVA_OPTS", Load, "java launcher scripts (tomcat, gradle, sbt wrappers) pass it to the JVM: -javaagent runs code"),
    one("MAVEN_OPTS", Load, "mvn passes it to the JVM: -javaagent runs code"),
    one("GRADLE_OPTS", Load, "gradle passes it to the JVM: -javaagent runs code"),
    one("BUN_OPTIONS", Load, "bun takes command-line options (--preload) from it"),
    one("ELIXIR_ERL_OPTIONS", Load, "elixir passes it to the Erlang VM (-eval, -pa)"),
    family("R_PROFILE", Load, "R runs this profile file at startup (R_PROFILE, R_PROFILE_USER)"),
    family("R_ENVIRON", Load, "R reads this environment file at startup (R_ENVIRON, R_ENVIRON_USER), which sets R_PROFILE"),
    family("R_LIBS", Load, "R loads packages from these directories (R_LIBS, R_LIBS_USER, R_LIBS_SITE)"),
    one("TCLLIBPATH", Load, "tcl loads packages from these directories"),
    one("JULIA_LOAD_PATH", Load, "julia loads modules from these paths"),
    one("JULIA_DEPOT_PATH", Load, "julia runs config/startup.jl and loads packages from these depots"),
    one("PERL_MB_OPT", Load, "Module::Build takes options from it"),
    one("PERL_MM_OPT", Load, "ExtUtils::MakeMaker takes options from it"),
    one("GOFLAGS", Load, "go takes flags from it (-toolexec runs a program around every tool, -modfile)"),
    one("GOTOOLCHAIN", Load, "go downloads and runs the named toolchain"),
    family("RUSTC_", Load, "cargo runs this wrapper around rustc (RUSTC_WRAPPER, RUSTC_WORKSPACE_WRAPPER)"),
    one("RUSTC", Load, "cargo runs this program as the compiler"),
    one("RUSTFLAGS", Load, "rustc takes flags from it (-C linker= runs a program)"),
    one("DOTNET_ROOT", Load, ".NET loads the runtime from this directory"),
    one("PYTHONEXECUTABLE", Load, "python (framework builds) and tools re-run this interpreter"),
    // ---- command hooks: the value is a command someone runs
    one("PATH", Hook, "every program found by name comes from these directories"),
    one("IFS", Hook, "changes how shells split words and commands"),
    one("ENV", Hook, "sh and bash source this file at startup"),
    one("BASH_ENV", Hook, "bash sources this file before every script"),
    one("SHELLOPTS", Hook, "bash options at startup (e.g. xtrace with PS4)"),
    one("BASHOPTS", Hook, "bash options at startup"),
    one("PS4", Hook, "bash expands it, running command substitutions, on every traced line"),
    one("PROMPT_COMMAND", Hook, "bash runs it before every prompt"),
    one("GIT_SSH", Hook, "git runs this program to reach ssh remotes"),
    one("GIT_SSH_COMMAND", Hook, "git runs this command to reach ssh remotes"),
    one("GIT_ASKPASS", Hook, "git runs this program to ask for credentials"),
    family("SSH_ASKPASS", Hook, "ssh runs this program to ask for passphrases (SSH_ASKPASS_REQUIRE forces it)"),
    one("SUDO_ASKPASS", Hook, "sudo runs this program to ask for the password"),
    one("GIT_PROXY_COMMAND", Hook, "git runs this command for git:// connections"),
    one("GIT_EXTERNAL_DIFF", Hook, "git runs this program for every diff"),
    one("GIT_EDITOR", Hook, "git runs this editor"),
    one("GIT_SEQUENCE_EDITOR", Hook, "git rebase runs this editor"),
    one("GIT_PAGER", Hook, "git pipes output through this command"),
    one("EDITOR", Hook, "programs run this editor"),
    one("VISUAL", Hook, "programs run this editor"),
    one("PAGER", Hook, "programs pipe output through this command"),
    one("MANPAGER", Hook, "man pipes pages through this command"),
    one("BROWSER", Hook, "programs (python webbrowser, xdg-open) run this command with a URL"),
    one("LESSOPEN", Hook, "less runs this input preprocessor on every file"),
    one("LESSCLOSE", Hook, "less runs this postprocessor on every file"),
    one("SYSTEMD_PAGER", Hook, "systemctl and journalctl pipe output through this command"),
    one("SYSTEMD_EDITOR", Hook, "systemctl edit runs this editor"),
    one("SHELL", Hook, "programs run commands (editors, make, ssh, git hooks) through this shell"),
    // ---- configuration that runs code
    family("GIT_CONFIG", Conf, "git configuration (GIT_CONFIG_COUNT/KEY_n/VALUE_n, GIT_CONFIG_PARAMETERS, GIT_CONFIG_GLOBAL) sets core.sshCommand, core.fsmonitor, aliases: commands git runs"),
    one("GIT_DIR", Conf, "git reads this repository's config and hooks, which run commands"),
    one("GIT_TEMPLATE_DIR", Conf, "git init copies hooks from this directory"),
    one("OPENSSL_CONF", Conf, "OpenSSL reads this config, which loads engines and providers"),
    one("PHPRC", Conf, "php reads php.ini from here (auto_prepend_file runs code)"),
    one("PHP_INI_SCAN_DIR", Conf, "php reads extra ini files from here (auto_prepend_file runs code)"),
    one("VIMINIT", Conf, "vim runs these ex commands at startup"),
    one("EXINIT", Conf, "vi/ex run these commands at startup"),
    family("NPM_CONFIG_", Conf, "npm configuration (script-shell, node-options, registry): commands and code npm runs"),
    family("PIP_", Conf, "pip takes every option from a PIP_ variable (PIP_CONFIG_FILE, PIP_INDEX_URL, PIP_TRUSTED_HOST, PIP_CERT): where the code pip installs comes from and which TLS it trusts"),
    family("YARN_", Conf, "yarn takes every setting from a YARN_ variable (yarnPath runs that file, npmRegistryServer)"),
    one("UV_CONFIG_FILE", Conf, "uv reads this config (index URLs: the code uv installs)"),
    one("ZDOTDIR", Conf, "zsh sources .zshenv and .zshrc from this directory"),
    family("XDG_CONFIG_", Conf, "programs read their configuration from here (XDG_CONFIG_HOME, XDG_CONFIG_DIRS): git config sets core.fsmonitor and core.sshCommand"),
    one("KUBECONFIG", Conf, "kubectl reads this config, whose exec credential plugins run commands"),
    one("DOCKER_CONFIG", Conf, "docker reads config.json from here (credsStore runs a helper program)"),
    one("AWS_CONFIG_FILE", Conf, "the AWS SDKs read this config (credential_process runs a command)"),
    one("AWS_SHARED_CREDENTIALS_FILE", Conf, "the AWS SDKs read credentials (and credential_process) from this file"),
    one("CARGO_HOME", Conf, "cargo reads config.toml (build wrappers, registries) and runs binaries from here"),
    one("CURL_HOME", Conf, "curl reads .curlrc from here (-k, proxies, output files)"),
    one("WGETRC", Conf, "wget reads this config (check_certificate, proxies, output files)"),
    one("INPUTRC", Conf, "readline reads this config (key bindings that run shell commands)"),
    one("HGRCPATH", Conf, "mercurial reads these configs (hooks run commands)"),
    one("GOENV", Conf, "go reads its settings (GOPROXY, GOFLAGS) from this file"),
    // ---- TLS weakening
    one("NODE_TLS_REJECT_UNAUTHORIZED", Tls, "0 turns off certificate verification in node"),
    one("NODE_EXTRA_CA_CERTS", Tls, "node trusts these extra certificate authorities"),
    one("SSL_CERT_FILE", Tls, "OpenSSL trusts the certificate authorities in this file"),
    one("SSL_CERT_DIR", Tls, "OpenSSL trusts the certificate authorities in this directory"),
    one("REQUESTS_CA_BUNDLE", Tls, "python requests trusts this bundle"),
    one("CURL_CA_BUNDLE", Tls, "curl (and requests) trust this bundle"),
    one("PYTHONHTTPSVERIFY", Tls, "0 turns off certificate verification in python"),
    one("GIT_SSL_NO_VERIFY", Tls, "git skips certificate verification"),
    one("GIT_SSL_CAINFO", Tls, "git trusts this bundle"),
    one("GIT_SSL_CAPATH", Tls, "git trusts this directory of certificates"),
    one("SSLKEYLOGFILE", Tls, "TLS libraries write session keys to this file, so traffic can be decrypted"),
    one("UV_INSECURE_HOST", Tls, "uv skips certificate verification for these hosts"),
    one("GOINSECURE", Tls, "go fetches these modules over plain HTTP or unverified TLS"),
    one("GONOSUMDB", Tls, "go skips checksum verification for these modules"),
    one("GONOSUMCHECK", Tls, "go skips checksum verification"),
    one("GOSUMDB", Tls, "go verifies modules against this database (off disables it)"),
    one("GOPRIVATE", Tls, "go fetches these modules directly, without checksum verification"),
    one("AWS_CA_BUNDLE", Tls, "the AWS SDKs trust this bundle"),
    one("DENO_CERT", Tls, "deno trusts this certificate authority"),
    one("DENO_TLS_CA_STORE", Tls, "deno picks which certificate store it trusts"),
    one("NIX_SSL_CERT_FILE", Tls, "nix and its programs trust this bundle"),
    one("HTTPLIB2_CA_CERTS", Tls, "python httplib2 trusts this bundle"),
    one("CARGO_HTTP_CAINFO", Tls, "cargo trusts this bundle"),
    one("DOCKER_CERT_PATH", Tls, "docker trusts and presents the certificates in this directory"),
    one("DOCKER_TLS_VERIFY", Tls, "docker turns TLS verification on or off"),
    // ---- traffic and file redirection
    one("HTTP_PROXY", Redir, "sends HTTP traffic to this proxy, overriding the egress proxy a target configures"),
    one("HTTPS_PROXY", Redir, "sends HTTPS traffic to this proxy, overriding the egress proxy a target configures"),
    one("ALL_PROXY", Redir, "sends all traffic to this proxy"),
    one("NO_PROXY", Redir, "lets traffic bypass the egress proxy"),
    one("FTP_PROXY", Redir, "sends FTP traffic to this proxy"),
    one("HOSTALIASES", Redir, "the resolver maps names through this file"),
    one("RESOLV_HOST_CONF", Redir, "the resolver reads this host.conf"),
    one("RES_OPTIONS", Redir, "changes resolver options"),
    one("LOCALDOMAIN", Redir, "the resolver searches these domains for short names"),
    one("TMPDIR", Redir, "temporary files go to this directory"),
    one("TZDIR", Redir, "time zone data is read from this directory"),
    family("UV_INDEX", Redir, "uv installs packages from this index (UV_INDEX, UV_INDEX_URL)"),
    one("UV_DEFAULT_INDEX", Redir, "uv installs packages from this index"),
    one("UV_EXTRA_INDEX_URL", Redir, "uv installs packages from this extra index"),
    one("UV_FIND_LINKS", Redir, "uv installs packages found at these locations"),
    one("BUN_CONFIG_REGISTRY", Redir, "bun installs packages from this registry"),
    one("GOPROXY", Redir, "go downloads modules from this proxy"),
    one("GONOPROXY", Redir, "go fetches these modules directly, bypassing the proxy"),
    one("DOCKER_HOST", Redir, "docker talks to this engine (a socket or remote host: root there)"),
    one("CONTAINER_HOST", Redir, "podman talks to this engine (a socket or remote host)"),
    family("SOCKS", Redir, "sends traffic to this SOCKS proxy (SOCKS_PROXY, SOCKS5_PROXY)"),
    one("GRPC_PROXY", Redir, "grpc sends traffic to this proxy"),
    family("GIT_TRACE", Redir, "git writes traces (packets, commands, credentials in URLs) to the named file"),
];

/// The entry that refuses `name`, if any.
pub fn dangerous_env(name: &str) -> Option<&'static DangerousEnv> {
    DANGEROUS_ENV.iter().find(|d| {
        if d.prefix {
            name.starts_with(d.name)
        } else {
            name == d.name
        }
    })
}

fn env_name(seg: &Segment<'_>) -> Result<Name, CapError> {
    leaf(Rule::env_name, seg).map_err(|_| {
        CapError::new(
            Code::CapEnvName,
            format!("env var name must be UPPER_SNAKE: {}", q(seg.text)),
            nonempty(&seg.span),
        )
    })?;
    let name = seg.text;
    if let Some(d) = dangerous_env(name) {
        let family = if d.prefix {
            format!("; every {}* name", d.name)
        } else {
            String::new()
        };
        return Err(CapError::new(
            Code::CapEnvDangerous,
            format!(
                "env var {} is refused (category: {}{family}): {}",
                q(name),
                d.category.as_str(),
                d.reason
            ),
            seg.span.clone(),
        ));
    }
    Ok(Name::new_unchecked(name.to_owned()))
}

// ---------------------------------------------------------------- ipc

/// Top-level directories that are never a single socket.
const SOCKET_DIR_MIN_DEPTH: usize = 2;

/// Well-known directories of sockets (after [`HOST_ALIASES`]): a `unix:`
/// endpoint naming one would reach every socket in it (every X display, every
/// ICE session), so it is directory-sized however deep it is. `x11` reaches one
/// display's socket instead.
pub const SOCKET_DIRS: &[&str] = &[
    "/tmp/.X11-unix",
    "/tmp/.ICE-unix",
    "/tmp/.font-unix",
    "/run/dbus",
];

fn endpoint(seg: &Segment<'_>) -> Result<Endpoint, CapError> {
    let (pair, base) = leaf(Rule::endpoint, seg).map_err(|pos| {
        if seg.text.starts_with("unix:") {
            let sub = Segment {
                text: &seg.text[5..],
                span: seg.span.start + 5..seg.span.end,
                quoted: seg.quoted,
                parsed: None,
            };
            if !sub.text.starts_with('/') {
                return CapError::new(
                    Code::CapIpcEndpoint,
                    format!("unix socket path must be absolute: {}", q(sub.text)),
                    nonempty(&sub.span),
                );
            }
            let mut e = path_error(&sub, pos.max(sub.span.start));
            e.code = if e.code == Code::CapFsGlob {
                Code::CapIpcSocket
            } else {
                Code::CapIpcEndpoint
            };
            return e;
        }
        CapError::new(
            Code::CapIpcEndpoint,
            format!("unknown ipc endpoint {}", q(seg.text)),
            nonempty(&seg.span),
        )
    })?;
    let inner = pair.into_inner().next().expect("endpoint has one child");
    endpoint_from(inner, base, seg)
}

/// Converts the alternative an endpoint rule matched (positions relative to `origin`).
fn endpoint_from(
    inner: Pair<'_, Rule>,
    origin: usize,
    seg: &Segment<'_>,
) -> Result<Endpoint, CapError> {
    match inner.as_rule() {
        Rule::ep_x11 => Ok(Endpoint::X11),
        Rule::ep_dbus_session => Ok(Endpoint::DbusSession),
        Rule::ep_dbus_system => Ok(Endpoint::DbusSystem),
        Rule::ep_unix => {
            let base = origin + inner.as_span().start() + "unix:".len();
            let abs = inner.into_inner().next().expect("ep_unix has abs_path");
            let fs = abs_path(abs, origin).map_err(|mut e| {
                e.code = Code::CapIpcEndpoint;
                e
            })?;
            let path = fs.path.as_str();
            let real = host_path(path);
            let depth = real.split('/').filter(|s| !s.is_empty()).count();
            let span = base..seg.span.end;
            if fs.glob != Glob::None
                || depth < SOCKET_DIR_MIN_DEPTH
                || SOCKET_DIRS.contains(&real.as_ref())
            {
                return Err(CapError::new(
                    Code::CapIpcSocket,
                    format!(
                        "unix endpoint {} is directory-sized, not one socket",
                        named(path, &real)
                    ),
                    span,
                ));
            }
            match refusal(path).map(|(why, _)| why) {
                None => {}
                Some(Refusal::Root | Refusal::SandboxTree(_)) => {
                    let top = SANDBOX_TREES
                        .iter()
                        .find(|top| tree_holds(top, &real))
                        .unwrap_or(&"/");
                    // /proc/<pid>/root/... reaches any file of any mount namespace, and
                    // /sys and /dev hold device interfaces; a server logs to stderr, not /dev/log.
                    return Err(CapError::new(
                        Code::CapIpcSocket,
                        format!("unix endpoint {} lies under {top}, which belongs to the sandbox", named(path, &real)),
                        span,
                    )
                    .help("name one socket file outside /proc, /sys and /dev, e.g. unix:/run/app/app.sock"));
                }
                Some(Refusal::EngineSocket) => {
                    return Err(CapError::new(
                        Code::CapIpcSocket,
                        format!(
                            "{} is a container-engine socket: access to it is root on the host",
                            named(path, &real)
                        ),
                        span,
                    ));
                }
                Some(Refusal::EngineDir(e)) => {
                    return Err(CapError::new(
                        Code::CapIpcSocket,
                        format!(
                            "unix endpoint {} is, holds or lies in a container-engine location ({e}): its sockets and state are root on the host",
                            named(path, &real)
                        ),
                        span,
                    ));
                }
            }
            Ok(Endpoint::Unix(fs.path))
        }
        r => unreachable!("unexpected {r:?} in endpoint"),
    }
}

// ---------------------------------------------------------------- clock

fn clock_source(seg: &Segment<'_>) -> Result<ClockSource, CapError> {
    let (pair, _) = leaf(Rule::clock_source, seg).map_err(|_| {
        CapError::new(
            Code::CapClockSource,
            format!("clock source must be system|tzdata: {}", q(seg.text)),
            nonempty(&seg.span),
        )
    })?;
    match pair.into_inner().next().map(|p| p.as_rule()) {
        Some(Rule::clock_system) => Ok(ClockSource::System),
        Some(Rule::clock_tzdata) => Ok(ClockSource::Tzdata),
        r => unreachable!("unexpected {r:?} in clock_source"),
    }
}

// ---------------------------------------------------------------- refinements

/// Returns the `nestedSandbox` value if present. Every other key, a repeated key,
/// a bad value or the refinement on a kind other than exec is an error: the
/// reference accepted all of these silently (SPEC §13.13).
fn nested_sandbox(pair: Pair<'_, Rule>, kind: Kind) -> Result<Option<bool>, CapError> {
    let mut value = None;
    for r in pair
        .into_inner()
        .filter(|p| p.as_rule() == Rule::refinement)
    {
        let span = r.as_span().start()..r.as_span().end();
        let mut key = None;
        let mut val = None;
        for p in r.into_inner() {
            match p.as_rule() {
                Rule::ref_key => key = Some(p),
                Rule::ref_value => val = Some(p),
                x => unreachable!("unexpected {x:?} in refinement"),
            }
        }
        let key = key.expect("refinement has a key");
        let err = |m: String, span: Range<usize>| CapError::new(Code::CapRefinement, m, span);
        if key.as_str() != "nestedSandbox" {
            return Err(err(format!("unknown refinement {}", q(key.as_str())), span));
        }
        if kind != Kind::Exec {
            return Err(err(
                format!("nestedSandbox applies to exec capabilities, not {kind}"),
                span,
            ));
        }
        if value.is_some() {
            return Err(err(
                "nestedSandbox is given more than once".to_owned(),
                span,
            ));
        }
        let Some(val) = val else {
            return Err(err(
                "nestedSandbox needs a value: true or false".to_owned(),
                span,
            ));
        };
        let flag = val.clone().into_inner().next().map(|p| p.as_rule());
        if !matches!(flag, Some(Rule::flag_true | Rule::flag_false)) {
            return Err(err(
                format!(
                    "nestedSandbox must be true or false, not {}",
                    q(val.as_str())
                ),
                span,
            ));
        }
        value = Some(flag == Some(Rule::flag_true));
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
