//! `capgate diff --target T`: the output lines added and removed.
//!
//! Both manifests are compiled for the target as `explain` does (permissive,
//! so a fact the target cannot lower shows up as a change instead of an
//! error), and the explanation's fragments are compared as multisets of
//! lines: an argv target's unit is one fragment (`--ro-bind /a /a`), a config
//! target's unit is one line (of one file: a target that writes several
//! files keeps them apart). Each added line names the rule and the NEW
//! capabilities behind it, each removed line the OLD ones.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::assets::Assets;
use crate::compile::{Compiler, Settings};
use crate::diag::Diagnostic;
use crate::explain::{CapRef, Explanation};
use crate::rules::ArtifactKind;

use super::Input;

/// An output line and why it is there.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The output file the line is in, for a target that writes several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub line: String,
    pub rule: String,
    pub rule_source: String,
    pub capabilities: Vec<CapRef>,
}

/// The output diff for one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetDiff {
    pub target: String,
    pub added: Vec<Line>,
    pub removed: Vec<Line>,
}

fn lines(e: &Explanation, argv: bool) -> Vec<Line> {
    let mut out = Vec::new();
    for f in &e.fragments {
        let texts: Vec<String> = if argv {
            vec![f.output.join(" ")]
        } else {
            f.output
                .iter()
                .flat_map(|o| o.split('\n').map(str::to_owned))
                .collect()
        };
        for line in texts {
            out.push(Line {
                file: f.file.clone(),
                line,
                rule: f.rule.clone(),
                rule_source: f.rule_source.clone(),
                capabilities: f.capabilities.clone(),
            });
        }
    }
    out
}

/// Lines of `a` beyond their count in `b`, in `a`'s order.
fn extra(a: &[Line], b: &[Line]) -> Vec<Line> {
    // The same text in another file is another line.
    let key = |l: &Line| (l.file.clone(), l.line.clone());
    let mut budget: HashMap<(Option<String>, String), usize> = HashMap::new();
    for l in b {
        *budget.entry(key(l)).or_default() += 1;
    }
    a.iter()
        .filter(|l| match budget.get_mut(&key(l)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect()
}

/// Compiles both manifests for `target` and compares the outputs.
pub fn target_diff(
    assets: &Assets,
    target: &str,
    old: &Input<'_>,
    new: &Input<'_>,
) -> Result<TargetDiff, Vec<Diagnostic>> {
    let compiler = Compiler::new(assets, target)?;
    let settings = Settings {
        permissive: true,
        set: Vec::new(),
    };
    let explain = |input: &Input<'_>| -> Result<Explanation, Vec<Diagnostic>> {
        let out = compiler.compile(input.name, input.bytes, &settings)?;
        let notes = match &out.artifact {
            crate::artifact::Artifact::Argv(a) => &a.notes,
            crate::artifact::Artifact::Config(c) => &c.notes,
        };
        Ok(crate::explain::explain(
            &compiler.target,
            input.name,
            &out.trace,
            notes,
        ))
    };
    let argv = compiler.target.artifact == ArtifactKind::Argv;
    let o = lines(&explain(old)?, argv);
    let n = lines(&explain(new)?, argv);
    Ok(TargetDiff {
        target: compiler.target.name.clone(),
        added: extra(&n, &o),
        removed: extra(&o, &n),
    })
}

impl TargetDiff {
    pub(super) fn write_text(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nTARGET {} (output lines: {} added, {} removed)",
            self.target,
            self.added.len(),
            self.removed.len()
        );
        for (sign, list) in [('+', &self.added), ('-', &self.removed)] {
            for l in list {
                match &l.file {
                    Some(file) => {
                        let _ = writeln!(out, "  {sign} {file}: {}", l.line);
                    }
                    None => {
                        let _ = writeln!(out, "  {sign} {}", l.line);
                    }
                }
                let _ = writeln!(out, "      <- {} ({})", l.rule, l.rule_source);
                for c in &l.capabilities {
                    let who = match &c.tool {
                        // Already in display form (explain's CapRef): quoting again would double `\`.
                        Some(t) => format!("tool \"{t}\""),
                        None => "serverCapabilities".to_owned(),
                    };
                    let _ = writeln!(out, "         <- {}  ({who}, {})", c.capability, c.location);
                }
            }
        }
    }
}
