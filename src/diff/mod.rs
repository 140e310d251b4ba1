//! `capgate diff OLD NEW`: what a manifest change newly lets the server reach.
//!
//! Both manifests go through the normal front end ([`crate::compile::load_policy`]:
//! the same coded, located errors as `compile`), then [`reach`] compares their
//! normalised policies kind by kind and names a concrete witness for every
//! widening. Tool names and declaration order never matter: the sandbox is per
//! server. With targets, [`output`] also lists the output lines added and
//! removed, each with its rule and capabilities, from `explain`'s data.

pub mod output;
pub mod reach;

use std::fmt::Write as _;

use serde::Serialize;

use crate::assets::Assets;
use crate::compile::{load_policy, Loaded};
use crate::diag::{quote, Diagnostic};

pub use reach::Reach;

/// A capability as the diff shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CapRef {
    /// `null` for serverCapabilities.
    pub tool: Option<String>,
    pub capability: String,
    /// `file:line:column` in the manifest that declares it.
    pub location: String,
}

/// One widening or narrowing, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `fs`, `net`, `exec`, `nestedSandbox`, `env`, `ipc`, `clock` or `assert`.
    pub kind: &'static str,
    /// A concrete path, `host:port`, program, variable, endpoint, clock source or assertion id.
    pub witness: String,
    /// What is gained (or lost) on the witness.
    pub access: Vec<String>,
    pub detail: String,
    /// The capabilities behind it (in NEW for `added`, in OLD for `removed`,
    /// except assertions, which are the other way round).
    pub capabilities: Vec<CapRef>,
}

/// The whole comparison (`--format json`; documented in docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub old: String,
    pub new: String,
    /// Whether NEW reaches anything OLD could not (exit 1).
    pub widens: bool,
    /// What NEW newly reaches, one witness per new grant.
    pub added: Vec<Change>,
    /// What OLD reached and NEW no longer does.
    pub removed: Vec<Change>,
    /// Per `--target`: the output lines added and removed.
    pub targets: Vec<output::TargetDiff>,
}

/// A manifest to compare: its display name and bytes.
pub struct Input<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

fn cap_ref(side: &Loaded, id: crate::ir::CapId) -> CapRef {
    let (raw, location) = side.cap(id);
    CapRef {
        tool: side.policy.caps[id as usize]
            .tool
            .map(|t| side.manifest.tools[t].name.clone()),
        capability: raw.text.clone(),
        location: format!("{}:{}:{}", location.file, location.line, location.column),
    }
}

fn change(r: Reach, old: &Loaded, new: &Loaded) -> Change {
    let side = if r.in_new { new } else { old };
    Change {
        kind: r.kind,
        capabilities: r.caps.iter().map(|&c| cap_ref(side, c)).collect(),
        witness: r.witness,
        access: r.access,
        detail: r.detail,
    }
}

/// Compares two manifests. Errors of both sides are returned together (OLD's
/// first); their first code decides the exit code, as in `compile`.
pub fn diff(
    old: Input<'_>,
    new: Input<'_>,
    targets: &[String],
    assets: &Assets,
) -> Result<DiffReport, Vec<Diagnostic>> {
    let o = load_policy(old.name, old.bytes);
    let n = load_policy(new.name, new.bytes);
    let (o, n) = match (o, n) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            let mut errors = o.err().unwrap_or_default();
            errors.extend(n.err().unwrap_or_default());
            return Err(errors);
        }
    };
    let added: Vec<Change> = reach::widened(&o.policy, &n.policy)
        .into_iter()
        .map(|r| change(r, &o, &n))
        .collect();
    let removed: Vec<Change> = reach::narrowed(&o.policy, &n.policy)
        .into_iter()
        .map(|r| change(r, &o, &n))
        .collect();
    let mut target_diffs = Vec::new();
    for t in targets {
        target_diffs.push(output::target_diff(assets, t, &old, &new)?);
    }
    Ok(DiffReport {
        old: old.name.to_owned(),
        new: new.name.to_owned(),
        widens: !added.is_empty(),
        added,
        removed,
        targets: target_diffs,
    })
}

fn write_changes(out: &mut String, sign: char, list: &[Change], via: &str) {
    for c in list {
        let _ = writeln!(
            out,
            "  {sign} {} {}  [{}]  {}",
            c.kind,
            c.witness,
            c.access.join(","),
            c.detail
        );
        for cap in &c.capabilities {
            let who = match &cap.tool {
                Some(t) => format!("tool {}", quote(t)),
                None => "serverCapabilities".to_owned(),
            };
            let _ = writeln!(
                out,
                "      {via} {}  ({who}, {})",
                cap.capability, cap.location
            );
        }
    }
}

impl DiffReport {
    /// The human-readable rendering.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "capgate diff: {} -> {}", self.old, self.new);
        if self.added.is_empty() {
            let _ = writeln!(out, "\nNEW reaches nothing OLD could not.");
        } else {
            let _ = writeln!(
                out,
                "\nNEWLY REACHABLE ({}; each with a witness and the capabilities that grant it)",
                self.added.len()
            );
            write_changes(&mut out, '+', &self.added, "<-");
        }
        if !self.removed.is_empty() {
            let _ = writeln!(out, "\nNO LONGER REACHABLE ({})", self.removed.len());
            write_changes(&mut out, '-', &self.removed, "<-");
        }
        for t in &self.targets {
            t.write_text(&mut out);
        }
        let _ = writeln!(
            out,
            "\n{}",
            if self.widens {
                "result: NEW widens what the server can reach (exit 1)"
            } else {
                "result: no widening (exit 0)"
            }
        );
        out
    }
}
