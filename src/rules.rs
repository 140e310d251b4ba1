//! Stage 4a: rules files (`rules/<target>.toml`) → validated [`Target`]s.
//!
//! A rules file is deserialised strictly (unknown keys are errors) into raw
//! structs, then validated into [`Target`]: unique rule ids, `when` keys that
//! exist on the rule's fact kind, verdicts where a capability is lowered,
//! template names in the target's output format, typed options. Every error
//! points at the rules file with line and column.
//!
//! The file format is documented in `docs/templates.md`.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::assets::Assets;
use crate::capability::Kind;
use crate::diag::{Code, Diagnostic, Location};
use crate::source::LineIndex;

/// How a target's output is written and escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One argv element per line (bwrap, docker run flags, systemd-run, ...).
    Argv,
    /// squid.conf lines.
    Squid,
    /// nftables ruleset lines.
    Nft,
    /// Generic configuration lines with the strictest token escaper.
    Lines,
    /// JSON text; values are written inside string quotes or as numbers.
    Json,
    /// YAML text; every printed string is written as a double-quoted
    /// scalar by the formatter itself, so no value can become a number, a
    /// boolean, null, an anchor or a new key (`ON`, `NO`, `0x1F`, `~`, `a: b`).
    Yaml,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Argv => "argv",
            Format::Squid => "squid",
            Format::Nft => "nft",
            Format::Lines => "lines",
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

/// The shape of the JSON artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// `{argv, egress, envInjections, assertions, provenance, notes, ...}`
    Argv,
    /// `{target, config, filename, unenforceable, provenance, notes, ...}`
    Config,
}

/// How faithfully a rule enforces the fact it lowers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Exactly what was declared.
    Exact,
    /// The host must wire something (a proxy, a socket, an env value).
    HostEnforced,
    /// Wider than declared.
    Superset,
    /// Not enforced at all by this target.
    Unenforceable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Exact => "exact",
            Verdict::HostEnforced => "host-enforced",
            Verdict::Superset => "superset",
            Verdict::Unenforceable => "unenforceable",
        }
    }
}

/// What a rule matches: the sandbox baseline (fires once) or facts of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactKind {
    Baseline,
    Of(Kind),
}

impl FactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Baseline => "baseline",
            FactKind::Of(k) => k.as_str(),
        }
    }

    /// The fields a `when` clause (and a template, as `fact.<field>`) can
    /// use: the names of [`crate::facts::schema`], in view order.
    pub fn fields(self) -> &'static [&'static str] {
        &self.schema().1
    }

    /// Indices into [`FactKind::fields`] in the order of the names: a
    /// map built in that order needs no sorting.
    pub fn fields_by_name(self) -> &'static [usize] {
        &self.schema().2
    }

    fn schema(self) -> &'static (FactKind, Vec<&'static str>, Vec<usize>) {
        type Schema = (FactKind, Vec<&'static str>, Vec<usize>);
        static SCHEMAS: std::sync::LazyLock<Vec<Schema>> = std::sync::LazyLock::new(|| {
            std::iter::once(FactKind::Baseline)
                .chain(Kind::ALL.into_iter().map(FactKind::Of))
                .map(|k| {
                    let names: Vec<&str> = crate::facts::schema(k).iter().map(|f| f.name).collect();
                    let mut order: Vec<usize> = (0..names.len()).collect();
                    order.sort_by_key(|&i| names[i]);
                    (k, names, order)
                })
                .collect()
        });
        SCHEMAS
            .iter()
            .find(|(k, _, _)| *k == self)
            .expect("every fact kind has a schema")
    }
}

impl<'de> Deserialize<'de> for FactKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "baseline" {
            return Ok(FactKind::Baseline);
        }
        Kind::parse(&s).map(FactKind::Of).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown fact `{s}`, expected one of baseline, fs, net, exec, env, ipc, clock, assert"
            ))
        })
    }
}

/// The type of a target option: it selects the parser of `--set` values.
///
/// Every value is parsed, never compared as text: `--set uid=00` is the
/// integer 0 and `--set user=+0` is no uid at all. Values a tool would read
/// differently than capgate (leading `+`, `0x`, names that resolve in the
/// image) are refused, and the canonical spelling is what the template sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    String,
    /// Decimal, optional leading `-`, digits only (`+1`, `0x1`, ` 1` refused).
    Integer,
    Boolean,
    /// A container user `UID:GID`, both decimal; names and a missing group are
    /// refused (an image's /etc/passwd decides what a name or a missing group
    /// means). `min`/`max` bound both ids.
    User,
    /// A network to join by name. `MODE[:OPTIONS]` is split the way the
    /// engines do, the mode is checked against `forbid` (ASCII case-insensitive),
    /// and `:OPTIONS` are refused.
    Network,
    /// A size in bytes: digits with an optional `k`, `m` or `g` suffix
    /// (rendered lowercase); never 0, which the kernel and the engines read as
    /// "unlimited". `min`/`max` are in bytes.
    Size,
    /// An absolute host path without control characters.
    Path,
    /// One of the option's `values`, exactly (e.g. the container engine).
    Choice,
    /// One IPv4 or IPv6 address, no prefix length, rendered canonically
    /// (`010.0.0.1` and `0.0.0.0/0` refused). The default may be `""`: unset.
    Ip,
    /// Comma-separated addresses as for `ip`, a list to templates (empty:
    /// `""`); each canonical, duplicates dropped.
    #[serde(rename = "ip_list")]
    IpList,
    /// A host path the sandbox can read (srt's `allowRead`), checked as the
    /// capability `fs:read:PATH/**` is: an option can grant no more than a
    /// manifest can declare (not the host root, /proc, an engine socket, ...).
    #[serde(rename = "read_path")]
    ReadPath,
    /// Space-separated paths, each as for `read_path`; a list to templates.
    #[serde(rename = "read_path_list")]
    ReadPathList,
}

impl OptionType {
    /// Whether a value names host paths: ones the target grants read access
    /// to beside the declared paths, or files its engine reads or writes at
    /// start (a seccomp profile, an environment file, squid's logs).
    pub fn is_host_path(self) -> bool {
        matches!(
            self,
            OptionType::Path | OptionType::ReadPath | OptionType::ReadPathList
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OptionType::String => "string",
            OptionType::Integer => "integer",
            OptionType::Boolean => "boolean",
            OptionType::User => "user",
            OptionType::Network => "network",
            OptionType::Size => "size",
            OptionType::Path => "path",
            OptionType::Choice => "choice",
            OptionType::Ip => "ip",
            OptionType::IpList => "ip_list",
            OptionType::ReadPath => "read_path",
            OptionType::ReadPathList => "read_path_list",
        }
    }

    fn expects(self) -> &'static str {
        match self {
            OptionType::String => "a string",
            OptionType::Integer => "a decimal integer (digits only, no `+`, `0x` or spaces)",
            OptionType::Boolean => "true or false",
            OptionType::User => "UID:GID, two decimal numbers (names and a missing group are refused: the image's /etc/passwd decides what they mean, and it may say root)",
            OptionType::Network => "the name of a network (letters, digits, `_`, `.`, `-`), without `:options`",
            OptionType::Size => "a size: digits with an optional k, m or g suffix, e.g. 512m",
            OptionType::Path => {
                "an absolute, normalised path (no `//`, `.`, `..` or trailing `/`) without control characters"
            }
            OptionType::ReadPath => {
                "an absolute, normalised path that `fs:read:PATH/**` could declare"
            }
            OptionType::ReadPathList => {
                "absolute, normalised paths separated by spaces, each one `fs:read:PATH/**` could declare"
            }
            OptionType::Choice => "one of its values",
            OptionType::Ip => "one IPv4 or IPv6 address, without a prefix length",
            OptionType::IpList => {
                "IPv4 or IPv6 addresses or prefixes (ADDR/LEN, the network's first address) separated by commas (or nothing)"
            }
        }
    }

    /// Whether `min`/`max` apply (and what they bound).
    fn bounded(self) -> bool {
        matches!(
            self,
            OptionType::Integer | OptionType::User | OptionType::Size
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    target: RawTarget,
    #[serde(default)]
    options: BTreeMap<String, toml::Spanned<RawOption>>,
    #[serde(default, rename = "rule")]
    rules: Vec<toml::Spanned<RawRule>>,
    /// Output files beyond the first (config artifacts).
    #[serde(default, rename = "file")]
    files: Vec<toml::Spanned<RawOutputFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutputFile {
    filename: String,
    template: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    description: String,
    format: Format,
    artifact: ArtifactKind,
    filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    #[serde(rename = "type")]
    ty: OptionType,
    default: toml::Value,
    doc: String,
    /// Inclusive bounds for integer options.
    min: Option<i64>,
    max: Option<i64>,
    /// String values refused exactly (e.g. `host` for a docker network).
    #[serde(default)]
    forbid: Vec<String>,
    /// String values refused by prefix (e.g. `container:`).
    #[serde(default)]
    forbid_prefix: Vec<String>,
    /// Characters a string or path value may not contain (e.g. `%` where systemd
    /// expands specifiers).
    #[serde(default)]
    forbid_chars: String,
    /// The values a `choice` option accepts.
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    doc: String,
    fact: FactKind,
    #[serde(default)]
    when: BTreeMap<String, toml::Value>,
    #[serde(default)]
    when_sandbox: BTreeMap<String, toml::Value>,
    slot: Option<String>,
    template: Option<String>,
    verdict: Option<Verdict>,
    note: Option<String>,
    reason: Option<String>,
}

/// A target option with its current value.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOption {
    pub name: String,
    pub ty: OptionType,
    pub default: OptionValue,
    pub doc: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub forbid: Vec<String>,
    pub forbid_prefix: Vec<String>,
    /// Characters a string or path value may not contain.
    pub forbid_chars: String,
    /// The values of a `choice` option.
    pub values: Vec<String>,
}

impl TargetOption {
    /// Parses and checks a `--set` value; the error says what is accepted.
    pub fn parse(&self, text: &str) -> Result<OptionValue, String> {
        let bad = |why: String| format!("option \"{}\" {why}", self.name);
        let expects = || bad(format!("expects {}", self.ty.expects()));
        let range = |v: i64, what: &str| -> Result<(), String> {
            if self.min.is_some_and(|m| v < m) || self.max.is_some_and(|m| v > m) {
                return Err(bad(format!(
                    "{what}must be between {} and {}",
                    self.min.map_or("-inf".to_owned(), |m| m.to_string()),
                    self.max.map_or("+inf".to_owned(), |m| m.to_string())
                )));
            }
            Ok(())
        };
        if let Some(c) = text.chars().find(|&c| self.forbid_chars.contains(c)) {
            return Err(bad(format!(
                "refuses the character {c:?} (refused: {:?})",
                self.forbid_chars
            )));
        }
        match self.ty {
            OptionType::Boolean => match text {
                "true" => Ok(OptionValue::Boolean(true)),
                "false" => Ok(OptionValue::Boolean(false)),
                _ => Err(expects()),
            },
            OptionType::Integer => {
                let v = parse_decimal(text).ok_or_else(expects)?;
                range(v, "")?;
                Ok(OptionValue::Integer(v))
            }
            OptionType::String => {
                let refused = self.forbid.iter().any(|f| f == text)
                    || self
                        .forbid_prefix
                        .iter()
                        .any(|p| text.starts_with(p.as_str()));
                if refused {
                    return Err(bad(format!("refuses this value ({})", self.refused())));
                }
                Ok(OptionValue::String(text.to_owned()))
            }
            OptionType::User => {
                let (uid, gid) = text.split_once(':').ok_or_else(expects)?;
                let id = |s: &str| parse_decimal(s).filter(|_| !s.starts_with('-'));
                let (Some(uid), Some(gid)) = (id(uid), id(gid)) else {
                    return Err(expects());
                };
                if self.min.is_some_and(|m| m > 0) && (uid == 0 || gid == 0) {
                    return Err(bad(format!(
                        "refuses {} 0 (root), in every spelling",
                        if uid == 0 { "uid" } else { "gid" }
                    )));
                }
                range(uid, "uid ")?;
                range(gid, "gid ")?;
                Ok(OptionValue::String(format!("{uid}:{gid}")))
            }
            OptionType::Network => {
                // The engines split `mode:options` at the first colon.
                let (mode, options) = match text.split_once(':') {
                    Some((m, o)) => (m, Some(o)),
                    None => (text, None),
                };
                if self.forbid.iter().any(|f| f.eq_ignore_ascii_case(mode)) {
                    return Err(bad(format!(
                        "refuses the network mode \"{mode}\" ({})",
                        self.refused()
                    )));
                }
                let name_ok = mode
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                    && mode
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if options.is_some() || !name_ok {
                    return Err(expects());
                }
                Ok(OptionValue::String(mode.to_owned()))
            }
            OptionType::Size => {
                let (digits, unit, mul) = match text.as_bytes().last() {
                    Some(b'k' | b'K') => (&text[..text.len() - 1], "k", 1i64 << 10),
                    Some(b'm' | b'M') => (&text[..text.len() - 1], "m", 1 << 20),
                    Some(b'g' | b'G') => (&text[..text.len() - 1], "g", 1 << 30),
                    _ => (text, "", 1),
                };
                let n = parse_decimal(digits)
                    .filter(|_| !digits.starts_with('-'))
                    .ok_or_else(expects)?;
                let bytes = n.checked_mul(mul).ok_or_else(expects)?;
                if bytes == 0 {
                    return Err(bad(
                        "refuses 0: the kernel and the engines read a size of 0 as unlimited"
                            .to_owned(),
                    ));
                }
                range(bytes, "in bytes ")?;
                Ok(OptionValue::String(format!("{n}{unit}")))
            }
            OptionType::Path => {
                // Normalised, so that the text is the path the host resolves: a
                // `..` after a link the server planted goes somewhere else.
                let normalised =
                    text.len() > 1 && text[1..].split('/').all(|c| !matches!(c, "" | "." | ".."));
                if !text.starts_with('/') || !normalised || text.chars().any(char::is_control) {
                    return Err(expects());
                }
                Ok(OptionValue::String(text.to_owned()))
            }
            OptionType::Choice => {
                if !self.values.iter().any(|v| v == text) {
                    return Err(bad(format!(
                        "expects one of {}",
                        self.values
                            .iter()
                            .map(|v| format!("\"{v}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Ok(OptionValue::String(text.to_owned()))
            }
            OptionType::Ip => {
                // std's parser refuses leading zeros, prefixes and zone ids.
                let ip: std::net::IpAddr = text.parse().map_err(|_| expects())?;
                Ok(OptionValue::String(ip.to_string()))
            }
            OptionType::ReadPath => self
                .readable(text)
                .map(|p| OptionValue::String(p.to_owned())),
            OptionType::ReadPathList => {
                let mut out: Vec<String> = Vec::new();
                for path in text.split(' ').filter(|p| !p.is_empty()) {
                    let path = self.readable(path)?;
                    if !out.iter().any(|o| o == path) {
                        out.push(path.to_owned());
                    }
                }
                Ok(OptionValue::List(out))
            }
            OptionType::IpList => {
                let mut out: Vec<String> = Vec::new();
                for item in text
                    .split(',')
                    .filter(|i| !text.is_empty() || !i.is_empty())
                {
                    let canonical = parse_ip_or_prefix(item).ok_or_else(expects)?;
                    if !out.contains(&canonical) {
                        out.push(canonical);
                    }
                }
                Ok(OptionValue::List(out))
            }
        }
    }

    /// `value` as `--set` takes it back: a list joined with its type's separator.
    pub fn value_text(&self, value: &OptionValue) -> String {
        match (self.ty, value) {
            (OptionType::ReadPathList, OptionValue::List(items)) => items.join(" "),
            _ => value.to_string(),
        }
    }

    /// `path` if the capability `fs:read:PATH/**` parses: the grammar's
    /// normalisation and reserved-path checks, so that an option can make
    /// readable only what a manifest could declare.
    fn readable<'p>(&self, path: &'p str) -> Result<&'p str, String> {
        let cap = if path == "/" {
            "fs:read:/**".to_owned()
        } else {
            format!("fs:read:{path}/**")
        };
        let host = crate::syntax::host_path(path);
        if let Some(f) = self
            .forbid
            .iter()
            .find(|f| crate::syntax::host_path(f) == host)
        {
            let named = if f == path {
                format!("{path:?}")
            } else {
                format!("{path:?} (the host's {f})")
            };
            return Err(format!(
                "option \"{}\" refuses {named}: {}",
                self.name,
                self.refused()
            ));
        }
        match crate::syntax::parse_capability(&cap) {
            Ok(_) => Ok(path),
            Err(e) => Err(format!(
                "option \"{}\" refuses {path:?}: it makes the path readable in the sandbox, so it is checked as the capability `{cap}` is, and that fails with {}: {}",
                self.name,
                e.code.as_str(),
                e.message
            )),
        }
    }

    fn refused(&self) -> String {
        let quote = |s: &String| format!("\"{s}\"");
        let mut out: Vec<String> = self.forbid.iter().map(quote).collect();
        out.extend(self.forbid_prefix.iter().map(|p| format!("\"{p}...\"")));
        format!("refused: {}", out.join(", "))
    }
}

/// An address, or a prefix `ADDR/LEN` (LEN decimal, at most 32 or 128, the
/// address its network's first), in canonical form.
fn parse_ip_or_prefix(text: &str) -> Option<String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let Some(len) = len else {
        return Some(ip.to_string());
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = u32::try_from(parse_decimal(len).filter(|l| (0..=max).contains(l))?).ok()?;
    let host_bits_zero = match ip {
        std::net::IpAddr::V4(a) => u32::from(a).checked_shl(len).unwrap_or(0) == 0,
        std::net::IpAddr::V6(a) => u128::from(a).checked_shl(len).unwrap_or(0) == 0,
    };
    host_bits_zero.then(|| format!("{ip}/{len}"))
}

/// A decimal integer: an optional `-` and ASCII digits only. Leading zeros
/// are the same number (`007` is 7); `+`, `0x`, `_` and spaces are refused
/// so that no tool reads the text as a different number than capgate.
fn parse_decimal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A typed option value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum OptionValue {
    String(String),
    Integer(i64),
    Boolean(bool),
    /// A list option's items, canonical.
    List(Vec<String>),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::String(s) => f.write_str(s),
            OptionValue::Integer(i) => write!(f, "{i}"),
            OptionValue::Boolean(b) => write!(f, "{b}"),
            OptionValue::List(items) => f.write_str(&items.join(",")),
        }
    }
}

impl OptionValue {
    fn from_toml(ty: OptionType, v: &toml::Value) -> Option<OptionValue> {
        match (ty, v) {
            (
                OptionType::String
                | OptionType::User
                | OptionType::Network
                | OptionType::Size
                | OptionType::Path
                | OptionType::Choice
                | OptionType::Ip
                | OptionType::IpList
                | OptionType::ReadPath
                | OptionType::ReadPathList,
                toml::Value::String(s),
            ) => Some(OptionValue::String(s.clone())),
            (OptionType::Integer, toml::Value::Integer(i)) => Some(OptionValue::Integer(*i)),
            (OptionType::Boolean, toml::Value::Boolean(b)) => Some(OptionValue::Boolean(*b)),
            _ => None,
        }
    }
}

/// A `when` condition value.
#[derive(Debug, Clone, PartialEq)]
pub enum WhenValue {
    Bool(bool),
    Int(i64),
    Str(String),
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub doc: String,
    pub fact: FactKind,
    /// Field = any of these values.
    pub when: Vec<(String, Vec<WhenValue>)>,
    /// Baseline field = any of these values: the rule fires only in a
    /// policy whose baseline matches (`when_sandbox = { net = false }`).
    pub when_sandbox: Vec<(String, Vec<WhenValue>)>,
    pub slot: Option<String>,
    /// Loader name of the fragment template (`<target>/<file>`).
    pub template: Option<String>,
    pub verdict: Option<Verdict>,
    pub note: Option<String>,
    pub reason: Option<String>,
    /// 1-based line of the rule in its file.
    pub line: usize,
}

/// A validated target.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub description: String,
    pub format: Format,
    pub artifact: ArtifactKind,
    /// What the target writes: one entry template per output file, the
    /// first `main.<format>.j2`. An argv target has exactly one, unnamed.
    /// Every fragment is placed exactly once across all of them.
    pub files: Vec<OutputFile>,
    pub options: Vec<TargetOption>,
    pub rules: Vec<Rule>,
    /// Where the rules file came from (`rules/bwrap.toml` or an operator path).
    pub source: String,
    pub builtin: bool,
}

/// One output file of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The file's name (config artifacts); `None` for an argv target.
    pub filename: Option<String>,
    /// Loader name of the file's entry template.
    pub template: String,
}

impl Target {
    /// Loads and validates a target by name.
    pub fn load(assets: &Assets, name: &str) -> Result<Target, Vec<Diagnostic>> {
        let unknown = || {
            let known = assets
                .target_names()
                .map(|n| n.into_iter().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            vec![
                Diagnostic::new(Code::TargetUnknown, format!("unknown target \"{name}\""))
                    .with_help(format!("known targets: {known}")),
            ]
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(unknown());
        }
        let source = match assets.rules(name) {
            Ok(Some(s)) => s,
            Ok(None) => return Err(unknown()),
            Err(e) => {
                return Err(vec![Diagnostic::new(
                    Code::RulesInvalid,
                    format!("cannot read rules for target \"{name}\": {e}"),
                )])
            }
        };
        parse_target(name, &source.display, &source.text, source.builtin)
    }

    /// Kinds that at least one rule lowers.
    pub fn supported_kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| self.rules.iter().any(|r| r.fact == FactKind::Of(*k)))
            .collect()
    }

    /// Every slot a rule emits into, in first-use order.
    pub fn slots(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in self.rules.iter().filter_map(|r| r.slot.as_deref()) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

fn parse_target(
    name: &str,
    display: &str,
    text: &str,
    builtin: bool,
) -> Result<Target, Vec<Diagnostic>> {
    let lines = LineIndex::new(text);
    let loc = |offset: usize| {
        let (line, column) = lines.line_col(offset);
        Location {
            file: display.to_owned(),
            line,
            column,
        }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let d = Diagnostic::new(Code::RulesInvalid, e.message().trim().to_owned());
        vec![match e.span() {
            Some(span) => d.at(loc(span.start)),
            None => d.at(loc(0)),
        }]
    })?;

    let mut errors = Vec::new();
    let mut err = |offset: usize, message: String| {
        errors.push(Diagnostic::new(Code::RulesInvalid, message).at(loc(offset)));
    };

    let format = raw.target.format;
    if raw.target.artifact == ArtifactKind::Config && raw.target.filename.is_none() {
        err(
            0,
            "[target] of a config artifact needs `filename`".to_owned(),
        );
    }
    let template_name = |file: &str| format!("{name}/{file}");
    let suffix = format!(".{}.j2", format.as_str());
    let main = format!("main{suffix}");
    if raw.target.artifact == ArtifactKind::Argv
        && (raw.target.filename.is_some() || !raw.files.is_empty())
    {
        err(
            0,
            "an argv artifact is one argv: `filename` and [[file]] are for config artifacts"
                .to_owned(),
        );
    }
    if let Some(f) = &raw.target.filename {
        if let Err(why) = check_filename(f) {
            let at = text
                .find("[target]")
                .and_then(|t| key_offset(text, t..text.len(), "filename", None))
                .unwrap_or(0);
            err(at, format!("[target] filename `{f}` {why}"));
        }
    }
    let mut files = vec![OutputFile {
        filename: raw.target.filename.clone(),
        template: template_name(&main),
    }];
    for spanned in &raw.files {
        let file = spanned.get_ref();
        let at =
            |key: &str| key_offset(text, spanned.span(), key, None).unwrap_or(spanned.span().start);
        if let Err(why) = check_filename(&file.filename) {
            err(
                at("filename"),
                format!("[[file]] filename `{}` {why}", file.filename),
            );
        } else if files
            .iter()
            .any(|f| f.filename.as_deref() == Some(file.filename.as_str()))
        {
            err(
                at("filename"),
                format!(
                    "[[file]] filename `{}` is already written by this target",
                    file.filename
                ),
            );
        }
        let t = &file.template;
        if !is_template_file(t, &suffix) {
            err(at("template"), format!("[[file]] template `{t}` must be a file name ending in `{suffix}` (the target's format)"));
        } else if files.iter().any(|f| f.template == template_name(t)) {
            err(
                at("template"),
                format!("[[file]] template `{t}` already renders another file of this target"),
            );
        }
        files.push(OutputFile {
            filename: Some(file.filename.clone()),
            template: template_name(t),
        });
    }

    let mut options = Vec::new();
    for (oname, spanned) in &raw.options {
        let offset = spanned.span().start;
        let o = spanned.get_ref();
        if oname.is_empty()
            || !oname
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            err(
                offset,
                format!("option name `{oname}` must be lower_snake_case"),
            );
            continue;
        }
        match OptionValue::from_toml(o.ty, &o.default) {
            Some(default) => {
                if (o.min.is_some() || o.max.is_some()) && !o.ty.bounded() {
                    err(
                        offset,
                        format!(
                            "option `{oname}`: min and max apply to integer, size and user options"
                        ),
                    );
                }
                if !o.forbid.is_empty()
                    && !matches!(
                        o.ty,
                        OptionType::String
                            | OptionType::Network
                            | OptionType::ReadPath
                            | OptionType::ReadPathList
                    )
                {
                    err(
                        offset,
                        format!("option `{oname}`: forbid applies to string, network and read_path options"),
                    );
                }
                if !o.forbid_prefix.is_empty() && o.ty != OptionType::String {
                    err(
                        offset,
                        format!("option `{oname}`: forbid_prefix applies to string options (a network option's forbid list names modes, `container` refuses `container:...`)"),
                    );
                }
                if !o.forbid_chars.is_empty()
                    && !matches!(o.ty, OptionType::String | OptionType::Path)
                {
                    err(
                        offset,
                        format!(
                            "option `{oname}`: forbid_chars applies to string and path options"
                        ),
                    );
                }
                if o.values.is_empty() == (o.ty == OptionType::Choice) {
                    err(
                        offset,
                        format!("option `{oname}`: `values` lists the values of a choice option, and only of one"),
                    );
                }
                let mut option = TargetOption {
                    name: oname.clone(),
                    ty: o.ty,
                    default: default.clone(),
                    doc: o.doc.clone(),
                    min: o.min,
                    max: o.max,
                    forbid: o.forbid.clone(),
                    forbid_prefix: o.forbid_prefix.clone(),
                    forbid_chars: o.forbid_chars.clone(),
                    values: o.values.clone(),
                };
                // The default goes through the same parser as a `--set` value
                // and is kept in its canonical spelling.
                let unset_ip = o.ty == OptionType::Ip && default.to_string().is_empty();
                match option.parse(&default.to_string()) {
                    _ if unset_ip => {}
                    Ok(v) => option.default = v,
                    Err(e) => err(offset, format!("default of {e}")),
                }
                options.push(option);
            }
            None => err(
                offset,
                format!("default of option `{oname}` does not match its type"),
            ),
        }
    }

    let mut ids = HashSet::new();
    let mut rules = Vec::new();
    for spanned in &raw.rules {
        let offset = spanned.span().start;
        let r = spanned.get_ref();
        // Where a key of this rule is written (errors point at it, not at `[[rule]]`).
        let at = |key: &str| key_offset(text, spanned.span(), key, None).unwrap_or(offset);
        let line = lines.line_col(offset).0;
        if r.id.is_empty()
            || !r
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            err(
                at("id"),
                format!(
                    "rule id `{}` must be non-empty and use letters, digits, `.`, `_`, `-`",
                    r.id
                ),
            );
        }
        if !ids.insert(r.id.clone()) {
            err(at("id"), format!("rule id `{}` is defined twice", r.id));
        }
        if r.doc.trim().is_empty() {
            err(at("doc"), format!("rule `{}` has an empty `doc`", r.id));
        }
        let mut when_of = |key: &str,
                           kind: FactKind,
                           conditions: &BTreeMap<String, toml::Value>| {
            let mut when = Vec::new();
            for (field, value) in conditions {
                // Only an error needs it: a scan of the rule's text.
                let at_field =
                    || key_offset(text, spanned.span(), key, Some(field)).unwrap_or(offset);
                if !kind.fields().contains(&field.as_str()) {
                    err(
                        at_field(),
                        format!(
                            "rule `{}`: `{key}.{field}` is not a field of {} facts (fields: {})",
                            r.id,
                            kind.as_str(),
                            kind.fields().join(", ")
                        ),
                    );
                    continue;
                }
                let values = match value {
                    toml::Value::Array(items) => {
                        items.iter().map(when_value).collect::<Option<Vec<_>>>()
                    }
                    v => when_value(v).map(|v| vec![v]),
                };
                let def = crate::facts::schema(kind)
                    .iter()
                    .find(|f| f.name == field.as_str())
                    .expect("a field of the kind");
                match values {
                    Some(v) if !v.is_empty() => {
                        for value in &v {
                            if let Some(why) = def.ty.refuses(value) {
                                err(
                                    at_field(),
                                    format!(
                                        "rule `{}`: `{key}.{field}` can never match: {why} (docs/templates.md, \"The fact model\")",
                                        r.id
                                    ),
                                );
                            }
                        }
                        when.push((field.clone(), v));
                    }
                    _ => err(at_field(), format!("rule `{}`: `{key}.{field}` must be a string, integer, boolean or a non-empty list of them", r.id)),
                }
            }
            when
        };
        let when = when_of("when", r.fact, &r.when);
        let when_sandbox = when_of("when_sandbox", FactKind::Baseline, &r.when_sandbox);
        match (r.fact, r.verdict) {
            (FactKind::Baseline, Some(_)) => err(at("verdict"), format!("rule `{}`: baseline rules have no verdict (they lower no capability)", r.id)),
            (FactKind::Of(_), None) => err(offset, format!("rule `{}`: rules for {} facts need a `verdict` (exact, superset, host-enforced, unenforceable)", r.id, r.fact.as_str())),
            _ => {}
        }
        if r.template.is_some() != r.slot.is_some() {
            err(
                if r.template.is_some() {
                    at("template")
                } else {
                    at("slot")
                },
                format!("rule `{}`: `template` and `slot` go together", r.id),
            );
        }
        if let Some(t) = &r.template {
            if !is_template_file(t, &suffix) {
                err(at("template"), format!("rule `{}`: template `{t}` must be a file name ending in `{suffix}` (the target's format)", r.id));
            }
        }
        if let Some(s) = &r.slot {
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                err(
                    at("slot"),
                    format!("rule `{}`: slot `{s}` must be lower_snake_case", r.id),
                );
            }
        }
        match (r.verdict, &r.reason) {
            (Some(Verdict::Unenforceable), None) => err(
                at("verdict"),
                format!("rule `{}`: an unenforceable verdict needs a `reason`", r.id),
            ),
            (Some(Verdict::Unenforceable), Some(_)) if r.template.is_some() => err(
                at("template"),
                format!("rule `{}`: an unenforceable rule cannot emit output", r.id),
            ),
            (v, Some(_)) if v != Some(Verdict::Unenforceable) => err(
                at("reason"),
                format!("rule `{}`: `reason` is only for unenforceable rules", r.id),
            ),
            _ => {}
        }
        rules.push(Rule {
            id: r.id.clone(),
            doc: r.doc.trim().to_owned(),
            fact: r.fact,
            when,
            when_sandbox,
            slot: r.slot.clone(),
            template: r.template.as_deref().map(template_name),
            verdict: r.verdict,
            note: r.note.clone(),
            reason: r.reason.clone(),
            line,
        });
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Target {
        name: name.to_owned(),
        description: raw.target.description,
        format,
        artifact: raw.target.artifact,
        files,
        options,
        rules,
        source: display.to_owned(),
        builtin,
    })
}

/// A template named in a rules file is a file of `templates/<target>/`
/// written in the target's format (`<name>.<format>.j2`).
fn is_template_file(name: &str, suffix: &str) -> bool {
    name.ends_with(suffix) && !name.contains('/') && !name.starts_with('.')
}

/// An output file name is one plain path component, so a consumer that
/// writes the files into a directory cannot be sent outside it.
fn check_filename(name: &str) -> Result<(), &'static str> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || !plain || name.starts_with('.') || name.len() > 255 {
        return Err(
            "must be a plain file name: letters, digits, `.`, `_`, `-`, not starting with `.`",
        );
    }
    Ok(())
}

/// The offset of `key = ...` (or, with `field`, of `field` inside the inline
/// table `key = { field = ... }`) in the rule table at `span`: where an error
/// about it points.
fn key_offset(
    text: &str,
    span: std::ops::Range<usize>,
    key: &str,
    field: Option<&str>,
) -> Option<usize> {
    let is_key = |t: &str, k: &str| {
        t.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let body = text.get(span.start..)?;
    let mut pos = span.start;
    for (n, line) in body.split_inclusive('\n').enumerate() {
        // The next table ends this one.
        if n > 0 && line.trim_start().starts_with('[') {
            return None;
        }
        let t = line.trim_start();
        if is_key(t, key) {
            let start = pos + (line.len() - t.len());
            let Some(field) = field else {
                return Some(start);
            };
            // `field` as a key of the inline table: after `{` or `,`.
            let mut i = 0;
            while let Some(j) = t[i..].find(field) {
                let at = i + j;
                let before = t[..at].trim_end();
                if (before.ends_with('{') || before.ends_with(',')) && is_key(&t[at..], field) {
                    return Some(start + at);
                }
                i = at + field.len();
            }
            return Some(start);
        }
        pos += line.len();
    }
    None
}

fn when_value(v: &toml::Value) -> Option<WhenValue> {
    match v {
        toml::Value::Boolean(b) => Some(WhenValue::Bool(*b)),
        toml::Value::Integer(i) => Some(WhenValue::Int(*i)),
        toml::Value::String(s) => Some(WhenValue::Str(s.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse_target("t", "rules/t.toml", text, false) {
            Ok(_) => vec![],
            Err(ds) => ds
                .iter()
                .map(|d| {
                    let l = d.location.as_ref().unwrap();
                    format!("{}:{}: {}", l.line, l.column, d.message)
                })
                .collect(),
        }
    }

    const HEAD: &str = "[target]\ndescription = \"d\"\nformat = \"argv\"\nartifact = \"argv\"\n";

    #[test]
    fn unknown_keys_are_located() {
        let e = errors(&format!("{HEAD}[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"fs\"\nverdict = \"exact\"\nfragmnet = \"x\"\n"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("10:1: unknown field `fragmnet`"), "{e:?}");
    }

    #[test]
    fn semantic_errors_are_collected() {
        let e = errors(&format!(
            "{HEAD}[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"fs\"\nwhen = {{ port = 1 }}\n\n[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"net\"\nverdict = \"unenforceable\"\ntemplate = \"x.squid.j2\"\nslot = \"s\"\n"
        ));
        assert_eq!(
            e,
            [
                "9:10: rule `a`: `when.port` is not a field of fs facts (fields: path, glob, actions, writable, full_write, under, under_readonly, index)",
                "5:1: rule `a`: rules for fs facts need a `verdict` (exact, superset, host-enforced, unenforceable)",
                "12:1: rule id `a` is defined twice",
                "16:1: rule `a`: template `x.squid.j2` must be a file name ending in `.argv.j2` (the target's format)",
                "15:1: rule `a`: an unenforceable verdict needs a `reason`",
            ]
        );
    }

    /// A `when` that can never match would silently drop its rule (a deny
    /// among them): every spelling is a located error at load.
    #[test]
    fn when_values_that_can_never_match_are_errors() {
        for (when, says) in [
            ("port = \"443\"", "\"443\" is not of type int"),
            ("private = \"true\"", "\"true\" is not of type bool"),
            ("host_kind = \"ip\"", "none of its values"),
            (
                "host_kind = [\"ipv4\", \"ipv7\"]",
                "\"ipv7\" is none of its values",
            ),
            ("index = -1", "negative"),
            ("any_port = 1", "1 is not of type bool"),
        ] {
            let e = errors(&format!(
                "{HEAD}[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"net\"\nwhen = {{ {when} }}\nverdict = \"exact\"\n"
            ));
            assert!(
                e.iter()
                    .any(|m| m.contains("can never match") && m.contains(says)),
                "{when}: {e:?}"
            );
        }
        let e = errors(&format!(
            "{HEAD}[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"fs\"\nwhen = {{ actions = \"read\" }}\nverdict = \"exact\"\n"
        ));
        assert!(e.iter().any(|m| m.contains("a list field")), "{e:?}");
    }

    #[test]
    fn ip_lists_take_addresses_and_prefixes_in_canonical_form() {
        assert_eq!(
            parse_ip_or_prefix("10.0.0.0/8").as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            parse_ip_or_prefix("fd00:0::/8").as_deref(),
            Some("fd00::/8")
        );
        assert_eq!(parse_ip_or_prefix("11.9.9.1").as_deref(), Some("11.9.9.1"));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "x/8",
            "010.0.0.0/8",
        ] {
            assert_eq!(parse_ip_or_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_fact_kind_is_a_located_error() {
        let e = errors(&format!(
            "{HEAD}[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"disk\"\n"
        ));
        assert!(e[0].contains("unknown fact `disk`"), "{e:?}");
    }
}

#[cfg(test)]
mod option_tests {
    //! `--set` values are parsed by the option's type, never compared as
    //! text (finding F12): every spelling of a forbidden value is refused.
    use super::*;

    fn target(name: &str) -> Target {
        Target::load(&Assets::default(), name).expect("built-in target loads")
    }

    fn option<'a>(t: &'a Target, name: &str) -> &'a TargetOption {
        t.options.iter().find(|o| o.name == name).expect("option")
    }

    fn parsed(t: &Target, name: &str, value: &str) -> Result<String, String> {
        option(t, name).parse(value).map(|v| v.to_string())
    }

    /// An `ip` option is one address, canonical: never a prefix that would
    /// turn "the proxy" into "everything", never a spelling another tool
    /// reads differently.
    #[test]
    fn ip_options_are_one_address() {
        let nft = target("nftables");
        assert_eq!(
            parsed(&nft, "proxy_ip", "169.254.1.1").unwrap(),
            "169.254.1.1"
        );
        assert_eq!(parsed(&nft, "proxy_ip", "FD00:0::1").unwrap(), "fd00::1");
        for bad in [
            "0.0.0.0/0",
            "10.0.0.1/32",
            "010.0.0.1",
            "10.1",
            "167772161",
            "fe80::1%eth0",
            "",
            " 10.0.0.1",
            "10.0.0.1 accept",
            "any",
        ] {
            assert!(parsed(&nft, "proxy_ip", bad).is_err(), "{bad:?} accepted");
        }
        let squid = target("squid");
        assert!(parsed(&squid, "client_ip", "0.0.0.0/0").is_err());
        assert_eq!(
            parsed(&squid, "host_addresses", "11.0.0.50,11.0.1.0/24,11.0.0.50").unwrap(),
            "11.0.0.50,11.0.1.0/24"
        );
        for bad in [
            "11.0.0.50,",
            ",",
            "11.0.1.1/24",
            "11.0.0.50 11.0.0.51",
            "all",
        ] {
            assert!(
                parsed(&squid, "host_addresses", bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn docker_user_refuses_root_in_every_spelling() {
        let t = target("docker");
        for v in [
            "0",
            "00",
            "0000",
            "00:0",
            "0:0",
            "+0",
            "0x0",
            "-0",
            "0:65534",
            "65534:0",
            "65534:00",
            "65534:-0",
            "root",
            "root:root",
            "ROOT:0",
            "toor:1000",
            "65534",
            "65534:",
            ":65534",
            "65534:65534:0",
            " 65534:65534",
            "65534:65534\n",
            "0x3e8:1000",
            "+1000:1000",
            "1_000:1000",
            "4294967295:1",
            "18446744073709551616:1",
            "",
        ] {
            assert!(parsed(&t, "user", v).is_err(), "user={v:?} accepted");
        }
        assert_eq!(parsed(&t, "user", "1000:1000").unwrap(), "1000:1000");
        // Leading zeros are the same number, rendered in the canonical form.
        assert_eq!(parsed(&t, "user", "0065534:065534").unwrap(), "65534:65534");
        let e = parsed(&t, "user", "00:0").unwrap_err();
        assert!(e.contains("uid 0 (root)"), "{e}");
        let e = parsed(&t, "user", "root").unwrap_err();
        assert!(e.contains("UID:GID"), "{e}");
    }

    #[test]
    fn docker_network_mode_is_parsed_before_the_forbid_check() {
        let t = target("docker");
        for v in [
            "host",
            "HOST",
            "Host",
            "bridge",
            "bridge:ip=10.88.0.9",
            "default",
            "private",
            "podman",
            "nat",
            "slirp4netns",
            "slirp4netns:allow_host_loopback=true",
            "pasta",
            "pasta:--map-host-loopback,10.0.2.2",
            "container",
            "container:other",
            "ns:/proc/1/ns/net",
            "capgate-egress:ip=10.89.0.5",
            "capgate egress",
            "",
            ":",
            "-x",
            ".x",
            "a/b",
        ] {
            assert!(parsed(&t, "network", v).is_err(), "network={v:?} accepted");
        }
        for v in ["capgate-egress", "none", "egress_1.internal"] {
            assert_eq!(parsed(&t, "network", v).unwrap(), v);
        }
        let e = parsed(&t, "network", "slirp4netns:allow_host_loopback=true").unwrap_err();
        assert!(e.contains("network mode \"slirp4netns\""), "{e}");
    }

    #[test]
    fn sizes_are_parsed_and_never_zero() {
        let t = target("docker");
        for (name, v) in [
            ("memory", "0"),
            ("memory", "0m"),
            ("memory", "000g"),
            ("memory", "1m"),
            ("memory", "-1m"),
            ("memory", "+512m"),
            ("memory", "0x200m"),
            ("memory", "512mb"),
            ("memory", "1t"),
            ("memory", "1.5g"),
            ("memory", " 512m"),
            ("memory", "99999999999999g"),
            ("tmpfs_size", "0"),
            ("shm_size", ""),
        ] {
            assert!(parsed(&t, name, v).is_err(), "{name}={v:?} accepted");
        }
        assert_eq!(parsed(&t, "memory", "512M").unwrap(), "512m");
        assert_eq!(parsed(&t, "memory", "0064m").unwrap(), "64m");
        assert_eq!(parsed(&t, "tmpfs_size", "1g").unwrap(), "1g");
        assert_eq!(parsed(&t, "shm_size", "65536").unwrap(), "65536");
        let e = parsed(&t, "tmpfs_size", "0k").unwrap_err();
        assert!(e.contains("unlimited"), "{e}");
    }

    #[test]
    fn choices_are_exact() {
        let t = target("docker");
        for v in ["Docker", "PODMAN", " docker", "crun", ""] {
            assert!(parsed(&t, "engine", v).is_err(), "engine={v:?} accepted");
        }
        assert_eq!(parsed(&t, "engine", "podman").unwrap(), "podman");
    }

    #[test]
    fn paths_are_absolute() {
        let t = target("docker");
        for v in ["unconfined", "profile.json", "", "/etc/x\n", "./x"] {
            assert!(parsed(&t, "seccomp_profile", v).is_err(), "{v:?} accepted");
        }
        assert!(parsed(&t, "seccomp_profile", "/etc/capgate/p.json").is_ok());
    }

    #[test]
    fn bwrap_ids_cannot_be_spelled_zero() {
        let t = target("bwrap");
        for name in ["uid", "gid"] {
            for v in [
                "0", "00", "0000", "+0", "-0", "0x0", " 0", "0 ", "1_000", "+1000", "",
            ] {
                assert!(parsed(&t, name, v).is_err(), "{name}={v:?} accepted");
            }
            assert_eq!(parsed(&t, name, "01000").unwrap(), "1000");
        }
    }

    #[test]
    fn option_keys_must_fit_the_type() {
        let head = "[target]\ndescription = \"d\"\nformat = \"argv\"\nartifact = \"argv\"\n";
        let bad = |opt: &str| -> Vec<String> {
            match parse_target("t", "rules/t.toml", &format!("{head}{opt}"), false) {
                Ok(_) => vec![],
                Err(ds) => ds.into_iter().map(|d| d.message).collect(),
            }
        };
        let e = bad("[options.p]\ntype = \"path\"\ndefault = \"/x\"\nmin = 1\ndoc = \"d\"\n");
        assert!(e[0].contains("min and max apply"), "{e:?}");
        let e = bad("[options.u]\ntype = \"user\"\ndefault = \"1:1\"\nforbid_prefix = [\"0\"]\ndoc = \"d\"\n");
        assert!(e[0].contains("forbid_prefix applies to string"), "{e:?}");
        let e = bad(
            "[options.n]\ntype = \"integer\"\ndefault = 1\nforbid_chars = \"%\"\ndoc = \"d\"\n",
        );
        assert!(
            e[0].contains("forbid_chars applies to string and path"),
            "{e:?}"
        );
        // The default is checked too.
        let e = bad(
            "[options.p]\ntype = \"path\"\ndefault = \"/a b\"\nforbid_chars = \" \"\ndoc = \"d\"\n",
        );
        assert!(e[0].contains("refuses the character ' '"), "{e:?}");
        let e = bad("[options.s]\ntype = \"size\"\ndefault = \"0\"\ndoc = \"d\"\n");
        assert!(
            e[0].starts_with("default of option \"s\" refuses 0"),
            "{e:?}"
        );
        let e = bad("[options.u]\ntype = \"user\"\ndefault = \"0:0\"\nmin = 1\ndoc = \"d\"\n");
        assert!(e[0].contains("uid 0 (root)"), "{e:?}");
        // The default is kept in its canonical spelling.
        let t = parse_target(
            "t",
            "rules/t.toml",
            &format!("{head}[options.s]\ntype = \"size\"\ndefault = \"064M\"\ndoc = \"d\"\n"),
            false,
        )
        .unwrap();
        assert_eq!(t.options[0].default.to_string(), "64m");
    }
}

#[cfg(test)]
mod location_tests {
    use super::*;

    /// Rules-file errors point at the key that is wrong, not at `[[rule]]`.
    #[test]
    fn errors_point_at_the_key() {
        let text = "[target]\ndescription = \"d\"\nformat = \"squid\"\nartifact = \"config\"\nfilename = \"f\"\n\n[[rule]]\nid = \"a\"\ndoc = \"d\"\nfact = \"net\"\nverdict = \"exact\"\nwhen = { private = true, port = \"443\" }\nslot = \"allow\"\ntemplate = \"x.nft.j2\"\n\n[[rule]]\nid = \"b\"\ndoc = \"  \"\nfact = \"baseline\"\n";
        let errors = parse_target("t", "rules/t.toml", text, false).unwrap_err();
        let at = |needle: &str| -> (usize, usize) {
            let d = errors
                .iter()
                .find(|d| d.message.contains(needle))
                .unwrap_or_else(|| panic!("no error with {needle:?}: {errors:?}"));
            let l = d.location.as_ref().unwrap();
            (l.line, l.column)
        };
        assert_eq!(at("`when.port` can never match"), (12, 26));
        assert_eq!(at("template `x.nft.j2`"), (14, 1));
        assert_eq!(at("empty `doc`"), (18, 1));
    }
}
