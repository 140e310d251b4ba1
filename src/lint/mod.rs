//! `capgate lint`: rules that flag manifests asking for more than a server of
//! their kind should, or declaring the same grant twice.
//!
//! Lint runs on the typed capabilities and normalised facts (stages 2 and 3 of
//! the pipeline, [`crate::syntax`] and [`crate::ir`]), never on capability text:
//! `fs:write,read:/x` and `fs:read,write:/x` are the same grant to every rule.
//! A manifest that does not get that far is refused with the same coded
//! diagnostics as `capgate compile`.
//!
//! Every rule lives in the registry [`RULES`] with a stable id, a level, a
//! one-line summary and a longer doc (shown by `capgate lint --explain ID`).
//! `docs/lint.md` documents each rule and `fixtures/lint/<id>.fires.json` /
//! `<id>.clean.json` exercise it; `tests/lint.rs` keeps the three in step.
//!
//! Adding a rule: write both fixtures and the docs/lint.md section first, then
//! add a [`Rule`] to [`RULES`] with a check function in `checks.rs` (or
//! `redundant.rs` for rules comparing capabilities with each other, which must
//! stay indexed: never compare every pair).

mod checks;
mod psl;
mod redundant;
pub mod sarif;

use std::fmt::Write as _;

use clap::ValueEnum;
use serde::Serialize;

use crate::compile::parse_capabilities;
use crate::diag::{printable, quote, Diagnostic, Location};
use crate::ir::{self, CapId, Policy};
use crate::manifest::{self, Manifest, RawCap, Source};
use crate::source::locate_all;

/// How serious a finding is. Ordered: `Note < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Redundant or worth a second look; never a risk by itself.
    Note,
    /// A grant that is often a mistake or needs a justification in review.
    Warning,
    /// A grant that defeats the sandbox for most servers.
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One lint rule of the registry.
pub struct Rule {
    /// Stable id: `<area>-<words>`, lower-case ASCII letters and `-` (see [`valid_id`]).
    pub id: &'static str,
    pub level: Level,
    /// One line: what the rule flags.
    pub summary: &'static str,
    /// Why it matters and how to fix it (plain text, a few lines).
    pub doc: &'static str,
    check: fn(&Context<'_>, &mut Vec<Hit>),
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .field("level", &self.level)
            .finish()
    }
}

/// The areas a rule id may start with.
pub const AREAS: &[&str] = &["fs", "net", "env", "exec", "ipc", "cap"];

/// Whether a rule id is well formed: a known area, then one or more
/// lower-case words joined by `-` (`fs-credentials`, `net-wildcard-egress`).
pub fn valid_id(id: &str) -> bool {
    let mut words = id.split('-');
    let area_ok = words.next().is_some_and(|a| AREAS.contains(&a));
    let rest: Vec<&str> = words.collect();
    area_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The rule registry, in documentation order. Ids are stable: a rule may be
/// reworded or made more precise, never renamed or reused for something else.
pub static RULES: &[Rule] = &[
    Rule {
        id: "fs-broad-grant",
        level: Level::Error,
        summary: "an fs capability grants a whole system tree or a whole home directory",
        doc: "Why: /home, /root, /etc, /usr, /var and the other top-level trees, and any user's whole \
home directory, hold credentials, configuration and other users' data. A server that needs a \
file there needs that file, not the tree; a grant of the tree is the sandbox switched off for \
that tree. (/ itself is already refused by the grammar, CAP_FS_RESERVED.)\n\
Fix: declare the directories the server works in, e.g. fs:read:/workspace/** or \
fs:read:/etc/app/config.toml.",
        check: checks::fs_broad_grant,
    },
    Rule {
        id: "fs-credentials",
        level: Level::Error,
        summary: "an fs capability reaches a credential store (~/.ssh, ~/.aws, ~/.kube, ~/.docker, cloud CLI configs, /etc/shadow, /run/secrets)",
        doc: "Why: these directories hold keys and tokens that act as the user or the host: \
SSH keys, AWS/Azure/gcloud/kubectl/docker credentials, GnuPG keys, netrc and package-registry \
tokens, container secrets. capgate spells a home as /root/... or /home/<user>/... \
(/Users/<user>/... on macOS); a grant at, below or above (but inside the home) such a \
directory exposes it.\n\
Fix: pass the one credential the server needs with env:inject:NAME, or mount a dedicated, \
scoped credential file outside the home.",
        check: checks::fs_credentials,
    },
    Rule {
        id: "fs-write-code",
        level: Level::Error,
        summary: "an fs capability can write where code or configuration is loaded from",
        doc: "Why: a server that can write /usr, /etc, /opt, a shell profile (~/.bashrc, \
~/.profile), ~/.config, ~/.local/bin or a repository's .git directory (hooks) can make the \
host run its code after the sandbox exits.\n\
Fix: write only to a data directory (fs:write:/workspace/out/**); make code and configuration \
read-only (fs:read:...).",
        check: checks::fs_write_code,
    },
    Rule {
        id: "net-wildcard-egress",
        level: Level::Error,
        summary: "a net capability reaches any host, or every name under a public suffix (*, *:443, *.com, *.co.uk, *.github.io)",
        doc: "Why: `*` is the whole public internet, and a wildcard over a public suffix (a TLD \
such as com, or a suffix anyone can register under, such as co.uk or github.io, from the \
Public Suffix List) reaches names any third party can register, so it is no boundary for \
exfiltration. The port does not matter: *:443 is still everywhere.\n\
Fix: list the hosts (net:connect:api.github.com:443) or a wildcard under a domain you \
control (net:connect:*.example.com:443).",
        check: checks::net_wildcard_egress,
    },
    Rule {
        id: "net-metadata-endpoint",
        level: Level::Error,
        summary: "a net capability names a cloud instance-metadata endpoint",
        doc: "Why: 169.254.169.254, fd00:ec2::254, 169.254.170.2, 100.100.100.200, \
168.63.129.16 and names such as metadata.google.internal serve the host's cloud \
credentials to whoever asks. capgate allows a declared metadata address (with a note); \
lint makes it an error.\n\
Fix: remove the capability; give the server a scoped credential with env:inject instead.",
        check: checks::net_metadata_endpoint,
    },
    Rule {
        id: "net-private-address",
        level: Level::Warning,
        summary: "a net capability names a private, loopback, link-local or other special-purpose address or local-only name",
        doc: "Why: an IP literal in a special-purpose range (RFC 1918, loopback, link-local, \
unique-local, ...) reaches the host or the internal network, which `*` and DNS names never \
do. Names such as localhost, *.local, *.internal and *.home.arpa only resolve to such \
addresses, and capgate's targets deny special ranges after DNS resolution, so they either \
do not work or hide an internal destination.\n\
Fix: if the server really needs an internal service, declare its exact address and port \
and say why in review; otherwise remove it.",
        check: checks::net_private_address,
    },
    Rule {
        id: "env-secret-read",
        level: Level::Warning,
        summary: "an env:read capability names a secret (*_TOKEN, *_KEY, *_SECRET, *PASSWORD*, ...)",
        doc: "Why: env:read declares an ambient variable the server reads from its environment \
(LANG, TZ); a secret should be declared env:inject, which says that the host hands this \
credential to the server on purpose. Reviewers and tools look for inject to find what \
credentials a server gets. Names are split at `_`: a word TOKEN, KEY, SECRET, PASS, PAT, \
CREDENTIALS, AUTH, COOKIE, SESSION or PRIVATE, or PASSWORD, PASSWD, SECRET, TOKEN or APIKEY \
anywhere in the name, marks a secret.\n\
Fix: write env:inject:NAME for the credential.",
        check: checks::env_secret_read,
    },
    Rule {
        id: "exec-nested-sandbox",
        level: Level::Warning,
        summary: "an exec capability asks for nestedSandbox=true",
        doc: "Why: nestedSandbox keeps user namespaces available inside the sandbox (bwrap) and \
drops the seccomp profile (docker) so the program can build its own sandbox (Chromium, \
Electron). It weakens the outer sandbox for every tool of the server.\n\
Fix: run the program with its own sandbox disabled if it is already inside capgate's \
(chromium --no-sandbox), or put it in a separate server.",
        check: checks::exec_nested_sandbox,
    },
    Rule {
        id: "ipc-system-bus",
        level: Level::Error,
        summary: "an ipc capability connects to the D-Bus system bus",
        doc: "Why: the system bus reaches systemd, NetworkManager, udisks, polkit and other \
root services; its policy was written for trusted local users, not for sandboxed code.\n\
Fix: use the session bus (ipc:connect:\"dbus:session\") or a dedicated socket \
(ipc:connect:\"unix:/run/app/app.sock\").",
        check: checks::ipc_system_bus,
    },
    Rule {
        id: "cap-duplicate",
        level: Level::Note,
        summary: "a capability repeats another of the same tool, or one of serverCapabilities",
        doc: "Why: the repeat grants nothing and makes review harder; spellings that parse to \
the same grant count (fs:read,write:/x and fs:write,read:/x). The same capability in two \
different tools is normal and is not flagged.\n\
Fix: remove the repeat.",
        check: redundant::cap_duplicate,
    },
    Rule {
        id: "cap-subsumed",
        level: Level::Note,
        summary: "a capability is already granted by a wider one of the same tool, or of serverCapabilities",
        doc: "Why: fs:read:/w/src/** next to fs:read,write:/w/**, net:connect:a.com:443 next to \
net:connect:a.com, or env:read:X next to env:read,inject:X grant nothing more; the narrower \
line suggests a limit that does not exist.\n\
Fix: remove the narrower capability, or narrow the wider one.",
        check: redundant::cap_subsumed,
    },
];

/// Finds a rule by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// What a check reports: the capability it is about and a message.
#[derive(Debug, Clone)]
pub struct Hit {
    pub cap: CapId,
    pub message: String,
    /// Another capability the finding refers to (the wider or earlier one).
    pub related: Option<CapId>,
}

/// What checks see.
pub struct Context<'a> {
    pub policy: &'a Policy,
}

/// One located finding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: &'static str,
    pub level: Level,
    pub message: String,
    pub location: Location,
    /// `None` for serverCapabilities.
    pub tool: Option<String>,
    pub capability_index: usize,
    pub capability: String,
    /// The other capability a duplicate or subsumed finding refers to.
    pub related: Option<Related>,
}

/// A capability a finding refers to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Related {
    pub location: Location,
    pub tool: Option<String>,
    pub capability_index: usize,
    pub capability: String,
}

/// The findings for one manifest.
#[derive(Debug, Clone)]
pub struct Report {
    pub file: String,
    pub findings: Vec<Finding>,
}

/// Parses, type-checks and normalises a manifest as `compile` does, then runs every rule.
/// Errors are the same diagnostics `compile` reports for the manifest.
pub fn lint(name: &str, bytes: &[u8]) -> Result<Report, Vec<Diagnostic>> {
    let source = Source::new(name, bytes);
    let manifest = manifest::load(&source, bytes)?;
    let caps = parse_capabilities(&manifest, &source)?;
    let policy = ir::normalise(caps);
    Ok(run(name, &source, &manifest, &policy))
}

fn raw<'m>(manifest: &'m Manifest, policy: &Policy, id: CapId) -> &'m RawCap {
    let info = &policy.caps[id as usize];
    match info.tool {
        Some(t) => &manifest.tools[t].capabilities[info.index],
        None => &manifest.server_capabilities[info.index],
    }
}

fn run(name: &str, source: &Source, manifest: &Manifest, policy: &Policy) -> Report {
    let ctx = Context { policy };
    let mut hits: Vec<(usize, Hit)> = Vec::new();
    for (r, rule) in RULES.iter().enumerate() {
        let mut out = Vec::new();
        (rule.check)(&ctx, &mut out);
        hits.extend(out.into_iter().map(|h| (r, h)));
    }
    // Manifest order, then registry order; one finding per rule and capability.
    hits.sort_by_key(|(r, h)| (h.cap, *r));
    hits.dedup_by_key(|(r, h)| (h.cap, *r));
    let offsets: Vec<usize> = (0..policy.caps.len() as CapId)
        .map(|id| raw(manifest, policy, id).offset)
        .collect();
    let locations = locate_all(source, &offsets);
    let tool = |id: CapId| {
        policy.caps[id as usize]
            .tool
            .map(|t| manifest.tools[t].name.clone())
    };
    let findings = hits
        .into_iter()
        .map(|(r, h)| Finding {
            rule: RULES[r].id,
            level: RULES[r].level,
            message: h.message,
            location: locations[h.cap as usize].clone(),
            tool: tool(h.cap),
            capability_index: policy.caps[h.cap as usize].index,
            capability: raw(manifest, policy, h.cap).text.clone(),
            related: h.related.map(|o| Related {
                location: locations[o as usize].clone(),
                tool: tool(o),
                capability_index: policy.caps[o as usize].index,
                capability: raw(manifest, policy, o).text.clone(),
            }),
        })
        .collect();
    Report {
        file: name.to_owned(),
        findings,
    }
}

/// Counts of findings per level: `[note, warning, error]`.
pub fn counts<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> [usize; 3] {
    let mut c = [0; 3];
    for f in findings {
        c[f.level as usize] += 1;
    }
    c
}

fn place(tool: &Option<String>, index: usize) -> String {
    match tool {
        Some(t) => format!("tool {}, capability {index}", quote(t)),
        None => format!("serverCapabilities[{index}]"),
    }
}

/// The text form: one block per finding, in the shape of compile diagnostics, then a summary.
pub fn to_text(reports: &[Report]) -> String {
    let mut out = String::new();
    for f in reports.iter().flat_map(|r| &r.findings) {
        let _ = writeln!(out, "{}[{}]: {}", f.level.as_str(), f.rule, f.message);
        let _ = writeln!(
            out,
            "  --> {}:{}:{}: {}",
            f.location.file,
            f.location.line,
            f.location.column,
            place(&f.tool, f.capability_index)
        );
        let _ = writeln!(out, "   |");
        let _ = writeln!(out, "   | {}", printable(&f.capability));
        if let Some(r) = &f.related {
            let _ = writeln!(
                out,
                "   = see: {} at {}:{}:{}: {}",
                printable(&r.capability),
                r.location.file,
                r.location.line,
                r.location.column,
                place(&r.tool, r.capability_index)
            );
        }
        let _ = writeln!(out, "   = help: capgate lint --explain {}", f.rule);
        out.push('\n');
    }
    let [note, warning, error] = counts(reports.iter().flat_map(|r| &r.findings));
    let _ = writeln!(
        out,
        "{error} error(s), {warning} warning(s), {note} note(s) in {} manifest(s)",
        reports.len()
    );
    out
}

/// The JSON form (stable; docs/cli.md).
pub fn to_json(reports: &[Report]) -> serde_json::Value {
    let findings: Vec<&Finding> = reports.iter().flat_map(|r| &r.findings).collect();
    let [note, warning, error] = counts(findings.iter().copied());
    serde_json::json!({
        "manifests": reports.iter().map(|r| r.file.as_str()).collect::<Vec<_>>(),
        "findings": findings,
        "summary": {"error": error, "warning": warning, "note": note},
    })
}

/// The text of `capgate lint --explain ID`.
pub fn explain(rule: &Rule) -> String {
    format!(
        "{}  ({})\n  {}\n\n{}\n\nDocumented in docs/lint.md#{}\n",
        rule.id,
        rule.level.as_str(),
        rule.summary,
        rule.doc
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        rule.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_grammar() {
        for ok in ["fs-credentials", "net-wildcard-egress", "cap-duplicate"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "fs", "fs-", "fs--x", "FS-x", "xx-y", "fs-x1", "fs_x", "-fs-x", "",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Level::Note < Level::Warning && Level::Warning < Level::Error);
    }
}
