//! `capgate explain`: why each output element is there, and what happened to
//! each capability.
//!
//! Everything here is read from the compile [`Trace`] as data: fragments know
//! their rule and fact, facts know their capabilities, capabilities know their
//! manifest location. Nothing is recovered by parsing the output text.

use std::fmt::Write as _;

use serde::Serialize;

use crate::compile::Trace;
use crate::diag::Location;
use crate::ir::CapId;
use crate::lower::{fact_caps, kinded_fact_json};
use crate::rules::{Rule, Target, Verdict, WhenValue};

/// A capability as explain shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CapRef {
    /// `null` for serverCapabilities.
    pub tool: Option<String>,
    pub capability: String,
    /// `file:line:column` of the capability string in the manifest.
    pub location: String,
}

/// Consecutive output elements produced by one rule firing on one fact.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fragment {
    /// The output file the lines are in, for a target that writes several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// argv elements or config lines, in output order.
    pub output: Vec<String>,
    /// Rule id; `<target>.main-template` for text written by the entry template itself.
    pub rule: String,
    /// `file:line` where the rule (or entry template) is defined.
    pub rule_source: String,
    /// The fact the rule lowered (`kind` first), or `{"kind": "baseline", ...}`.
    pub fact: serde_json::Value,
    pub capabilities: Vec<CapRef>,
}

/// A merge that gave a capability more than it declared.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Widening {
    /// What the merged fact grants, e.g. `read-write`, `open on any port`.
    pub granted: String,
    pub subject: String,
    /// The capabilities that asked for the wider grant.
    pub widened_by: Vec<CapRef>,
}

/// One capability's fate on this target.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityReport {
    pub tool: Option<String>,
    pub capability: String,
    pub location: String,
    /// exact, superset, host-enforced or unenforceable.
    pub verdict: &'static str,
    /// Rules that lowered the capability's fact.
    pub rules: Vec<String>,
    pub widenings: Vec<Widening>,
}

/// A rule and where it is defined.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRef {
    pub rule: String,
    pub rule_source: String,
}

/// A fact no rule of the target lowers.
#[derive(Debug, Clone, Serialize)]
pub struct Unlowered {
    pub fact: serde_json::Value,
    pub capabilities: Vec<CapRef>,
}

/// The whole explanation (`--format json`; stable, documented in docs/cli.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub target: String,
    pub manifest: String,
    pub fragments: Vec<Fragment>,
    pub capabilities: Vec<CapabilityReport>,
    pub unused_rules: Vec<RuleRef>,
    /// Facts no rule lowers: errors in `capgate compile` unless `--permissive`.
    pub unlowered: Vec<Unlowered>,
    pub notes: Vec<String>,
}

fn loc(l: &Location) -> String {
    format!("{}:{}:{}", l.file, l.line, l.column)
}

fn rule_source(target: &Target, rule: &Rule) -> String {
    format!("{}:{}", target.source, rule.line)
}

fn cap_ref(trace: &Trace, id: CapId) -> CapRef {
    CapRef {
        // The display form (escaped, long names cut), in text and JSON alike.
        tool: trace.cap_tool(id).map(crate::diag::tool_label),
        capability: trace.cap_text(id).to_owned(),
        location: loc(trace.cap_location(id)),
    }
}

/// Builds the explanation of a compile.
pub fn explain(
    target: &Target,
    manifest_name: &str,
    trace: &Trace,
    notes: &[String],
) -> Explanation {
    let lowered = &trace.lowered;

    // Group consecutive output elements by the fragment that wrote them,
    // file by file.
    let several = target.files.len() > 1;
    let mut fragments: Vec<Fragment> = Vec::new();
    let mut elements = trace.elements.iter();
    for (file, &len) in target.files.iter().zip(&trace.file_lens) {
        let name = several.then(|| file.filename.clone().unwrap_or_default());
        let mut last: Option<Option<usize>> = None;
        for (text, owner) in elements.by_ref().take(len) {
            if last == Some(*owner) {
                if let Some(f) = fragments.last_mut() {
                    f.output.push(text.clone());
                    continue;
                }
            }
            last = Some(*owner);
            let fragment = match owner {
                Some(i) => {
                    let f = &lowered.fragments[*i];
                    let rule = &target.rules[f.rule];
                    Fragment {
                        file: name.clone(),
                        output: vec![text.clone()],
                        rule: rule.id.clone(),
                        rule_source: rule_source(target, rule),
                        fact: kinded_fact_json(&trace.policy, f.fact),
                        capabilities: f.caps.iter().map(|&c| cap_ref(trace, c)).collect(),
                    }
                }
                None => Fragment {
                    file: name.clone(),
                    output: vec![text.clone()],
                    rule: format!("{}.main-template", target.name),
                    rule_source: format!("templates/{}:1", file.template),
                    fact: serde_json::json!({ "kind": "baseline" }),
                    capabilities: Vec::new(),
                },
            };
            fragments.push(fragment);
        }
    }

    // Which rules lowered each capability's facts.
    let mut rules_of: Vec<Vec<String>> = vec![Vec::new(); trace.policy.caps.len()];
    for &(ri, fact) in &lowered.firings {
        let rule = &target.rules[ri];
        for c in fact_caps(&trace.policy, fact, Some(rule)) {
            if !rules_of[c as usize].contains(&rule.id) {
                rules_of[c as usize].push(rule.id.clone());
            }
        }
    }

    let mut widenings: Vec<Vec<Widening>> = vec![Vec::new(); trace.policy.caps.len()];
    for w in &trace.policy.widenings {
        let subject = match w.kind {
            crate::capability::Kind::Fs => trace.policy.fs[w.fact].path.to_string(),
            crate::capability::Kind::Net => trace.policy.net[w.fact].host.to_string(),
            k => k.to_string(),
        };
        for &c in &w.widened {
            widenings[c as usize].push(Widening {
                granted: w.granted.clone(),
                subject: subject.clone(),
                widened_by: w.by.iter().map(|&b| cap_ref(trace, b)).collect(),
            });
        }
    }

    let capabilities = (0..trace.policy.caps.len())
        .map(|i| {
            let id = i as CapId;
            let r = cap_ref(trace, id);
            CapabilityReport {
                tool: r.tool,
                capability: r.capability,
                location: r.location,
                verdict: lowered
                    .verdicts
                    .get(&id)
                    .copied()
                    .unwrap_or(Verdict::Unenforceable)
                    .as_str(),
                rules: std::mem::take(&mut rules_of[i]),
                widenings: std::mem::take(&mut widenings[i]),
            }
        })
        .collect();

    Explanation {
        target: target.name.clone(),
        manifest: manifest_name.to_owned(),
        fragments,
        capabilities,
        unused_rules: target
            .rules
            .iter()
            .zip(&lowered.fired)
            .filter(|(_, fired)| !**fired)
            .map(|(r, _)| RuleRef {
                rule: r.id.clone(),
                rule_source: rule_source(target, r),
            })
            .collect(),
        unlowered: lowered
            .unlowered
            .iter()
            .map(|&f| Unlowered {
                fact: kinded_fact_json(&trace.policy, f),
                capabilities: fact_caps(&trace.policy, f, None)
                    .into_iter()
                    .map(|c| cap_ref(trace, c))
                    .collect(),
            })
            .collect(),
        notes: notes.to_vec(),
    }
}

fn show_cap(c: &CapRef) -> String {
    match &c.tool {
        // `t` is already in display form: quoting it again would double `\\`.
        Some(t) => format!("{}  (tool \"{t}\", {})", c.capability, c.location),
        None => format!("{}  (serverCapabilities, {})", c.capability, c.location),
    }
}

fn show_fact(fact: &serde_json::Value) -> String {
    let Some(map) = fact.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) if k == "kind" => s.clone(),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Explanation {
    /// The human-readable rendering.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "capgate explain: target {}, manifest {}",
            self.target, self.manifest
        );
        let _ = writeln!(
            out,
            "\nOUTPUT (each group, then the rule, fact and capabilities behind it)"
        );
        let mut file: Option<&str> = None;
        for f in &self.fragments {
            if f.file.is_some() && f.file.as_deref() != file {
                file = f.file.as_deref();
                let _ = writeln!(out, "  == file {} ==", file.unwrap_or_default());
            }
            for line in &f.output {
                let _ = writeln!(out, "  {line}");
            }
            let _ = writeln!(
                out,
                "      <- {} ({})  [{}]",
                f.rule,
                f.rule_source,
                show_fact(&f.fact)
            );
            for c in &f.capabilities {
                let _ = writeln!(out, "         <- {}", show_cap(c));
            }
        }
        let _ = writeln!(out, "\nCAPABILITIES (verdict on target {})", self.target);
        if self.capabilities.is_empty() {
            let _ = writeln!(out, "  (none declared)");
        }
        for c in &self.capabilities {
            let r = CapRef {
                tool: c.tool.clone(),
                capability: c.capability.clone(),
                location: c.location.clone(),
            };
            let _ = writeln!(out, "  {:<13} {}", c.verdict, show_cap(&r));
            if !c.rules.is_empty() {
                let _ = writeln!(out, "                rules: {}", c.rules.join(", "));
            }
            for w in &c.widenings {
                let _ = writeln!(
                    out,
                    "                widened: {} is {} because of:",
                    w.subject, w.granted
                );
                for b in &w.widened_by {
                    let _ = writeln!(out, "                  {}", show_cap(b));
                }
            }
        }
        let _ = writeln!(out, "\nRULES THAT NEVER FIRED");
        if self.unused_rules.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for r in &self.unused_rules {
            let _ = writeln!(out, "  {} ({})", r.rule, r.rule_source);
        }
        let _ = writeln!(
            out,
            "\nFACTS NO RULE LOWERS (errors in `capgate compile` unless --permissive)"
        );
        if self.unlowered.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for u in &self.unlowered {
            let _ = writeln!(out, "  {}", show_fact(&u.fact));
            for c in &u.capabilities {
                let _ = writeln!(out, "      <- {}", show_cap(c));
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNOTES");
            for n in &self.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
        out
    }
}

/// `capgate explain --rule ID --format json`: the rule as data.
pub fn rule_json(target: &Target, rule: &Rule) -> serde_json::Value {
    let conditions =
        |when: &[(String, Vec<WhenValue>)]| -> serde_json::Map<String, serde_json::Value> {
            when.iter()
                .map(|(k, vs)| {
                    let vs: Vec<serde_json::Value> = vs
                        .iter()
                        .map(|v| match v {
                            WhenValue::Bool(b) => (*b).into(),
                            WhenValue::Int(i) => (*i).into(),
                            WhenValue::Str(s) => s.clone().into(),
                        })
                        .collect();
                    (k.clone(), vs.into())
                })
                .collect()
        };
    serde_json::json!({
        "rule": rule.id,
        "target": target.name,
        "ruleSource": rule_source(target, rule),
        "fact": rule.fact.as_str(),
        "when": conditions(&rule.when),
        "whenSandbox": conditions(&rule.when_sandbox),
        "verdict": rule.verdict.map(Verdict::as_str),
        "slot": rule.slot,
        "template": rule.template.as_ref().map(|t| format!("templates/{t}")),
        "note": rule.note,
        "reason": rule.reason,
        "doc": rule.doc,
    })
}

/// `capgate explain --rule ID`: the rule's documentation and where it is defined.
pub fn rule_doc(target: &Target, rule: &Rule) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  (target {}, {})",
        rule.id,
        target.name,
        rule_source(target, rule)
    );
    let _ = writeln!(out, "fact: {}", rule.fact.as_str());
    for (label, when) in [("when", &rule.when), ("when_sandbox", &rule.when_sandbox)] {
        if when.is_empty() {
            continue;
        }
        let conds: Vec<String> = when
            .iter()
            .map(|(k, vs)| {
                let vs: Vec<String> = vs
                    .iter()
                    .map(|v| match v {
                        WhenValue::Bool(b) => b.to_string(),
                        WhenValue::Int(i) => i.to_string(),
                        WhenValue::Str(s) => format!("\"{s}\""),
                    })
                    .collect();
                format!("{k} = {}", vs.join(" | "))
            })
            .collect();
        let _ = writeln!(out, "{label}: {}", conds.join(", "));
    }
    if let Some(v) = rule.verdict {
        let _ = writeln!(out, "verdict: {}", v.as_str());
    }
    if let (Some(t), Some(s)) = (&rule.template, &rule.slot) {
        let _ = writeln!(out, "template: templates/{t} (slot {s})");
    }
    if let Some(n) = &rule.note {
        let _ = writeln!(out, "note: {n}");
    }
    if let Some(r) = &rule.reason {
        let _ = writeln!(out, "reason: {r}");
    }
    let _ = writeln!(out, "\n{}", rule.doc);
    out
}
