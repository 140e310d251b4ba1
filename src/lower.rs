//! Stage 4: facts × rules → fragments, notes, verdicts.
//!
//! Rules fire in a fixed order: baseline rules first (once each), then facts
//! kind by kind (fs, net, exec, env, ipc, clock, assert) in fact order, each
//! fact against the rules in file order. Every rule whose `when` matches
//! fires; a fact that no rule matches is *unlowered*, which the caller turns
//! into an error (strict) or an `unenforceable` entry (permissive).

use std::collections::BTreeMap;

use minijinja::value::{Serde, Value};
use serde::Serialize;

use crate::capability::{ClockSource, Endpoint, FsActions, Glob, Host, Kind};
use crate::diag::Diagnostic;
use crate::ir::{CapId, Policy, SPECIAL_V4, SPECIAL_V6, V4_MAPPED};
use crate::render::{note_name, reason_name, Renderer};
use crate::rules::{FactKind, OptionValue, Rule, Target, Verdict, WhenValue};

/// A fact by kind and index into its list in [`Policy`]; `Baseline` for the sandbox itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FactRef {
    Baseline,
    Fact(Kind, usize),
}

/// One rule firing on one fact.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// Index into the target's rules.
    pub rule: usize,
    pub fact: FactRef,
    pub slot: String,
    pub text: String,
    pub caps: Vec<CapId>,
}

/// An `unenforceable` entry.
#[derive(Debug, Clone)]
pub struct Unenforced {
    pub fact: FactRef,
    pub reason: String,
    pub caps: Vec<CapId>,
}

/// Everything lowering produced.
#[derive(Debug, Default)]
pub struct Lowered {
    pub fragments: Vec<Fragment>,
    pub notes: Vec<String>,
    pub unenforced: Vec<Unenforced>,
    /// Worst verdict per capability.
    pub verdicts: BTreeMap<CapId, Verdict>,
    /// Rule indices that fired at least once.
    pub fired: Vec<bool>,
    /// Every (rule index, fact) pair that fired, in firing order.
    pub firings: Vec<(usize, FactRef)>,
    pub unlowered: Vec<FactRef>,
}

#[derive(Serialize)]
struct BaselineView {
    nested: bool,
    tmp_bound: bool,
    net: bool,
    net_count: usize,
    private_net: bool,
    public_net: bool,
}

#[derive(Serialize)]
struct FsView<'a> {
    path: &'a str,
    glob: &'static str,
    actions: Vec<&'static str>,
    writable: bool,
    /// create, write and delete all declared: a read-write bind grants exactly this.
    full_write: bool,
}

#[derive(Serialize)]
struct NetView {
    host: String,
    host_kind: &'static str,
    domain: Option<String>,
    ip: Option<String>,
    port: Option<u16>,
    any_port: bool,
    private: bool,
    block_private: bool,
    index: usize,
}

#[derive(Serialize)]
struct ExecView<'a> {
    binary: &'a str,
    nested: bool,
}

#[derive(Serialize)]
struct EnvView<'a> {
    name: &'a str,
    action: &'static str,
}

#[derive(Serialize)]
struct IpcView {
    endpoint: &'static str,
    path: Option<String>,
}

#[derive(Serialize)]
struct ClockView {
    source: &'static str,
}

#[derive(Serialize)]
struct AssertView<'a> {
    id: &'a str,
    description: &'a str,
}

/// The template view of a fact, as a JSON value (also used by `explain`).
pub fn fact_json(policy: &Policy, fact: FactRef) -> serde_json::Value {
    fn v(view: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(view).expect("views serialise")
    }
    match fact {
        FactRef::Baseline => v(&baseline_view(policy)),
        FactRef::Fact(kind, i) => match kind {
            Kind::Fs => {
                let f = &policy.fs[i];
                v(&FsView {
                    path: f.path.as_str(),
                    glob: match f.glob {
                        Glob::None => "none",
                        Glob::Children => "children",
                        Glob::Recursive => "recursive",
                    },
                    actions: f.actions.names(),
                    writable: f.actions.writable(),
                    full_write: f.actions.contains(
                        FsActions::CREATE
                            .union(FsActions::WRITE)
                            .union(FsActions::DELETE),
                    ),
                })
            }
            Kind::Net => {
                let f = &policy.net[i];
                v(&NetView {
                    host: f.host.to_string(),
                    host_kind: f.host.kind_name(),
                    domain: match &f.host {
                        Host::Name(n) | Host::Wildcard(n) => Some(n.as_str().to_owned()),
                        _ => None,
                    },
                    ip: f.host.is_ip().then(|| f.host.to_string()),
                    port: f.port.map(|p| p.get()),
                    any_port: f.port.is_none(),
                    private: f.private,
                    block_private: !f.private,
                    index: i,
                })
            }
            Kind::Exec => {
                let f = &policy.exec[i];
                v(&ExecView {
                    binary: f.binary.as_str(),
                    nested: f.nested,
                })
            }
            Kind::Env => {
                let f = &policy.env[i];
                v(&EnvView {
                    name: f.name.as_str(),
                    action: if f.inject { "inject" } else { "read" },
                })
            }
            Kind::Ipc => {
                let f = &policy.ipc[i];
                let (endpoint, path) = match &f.endpoint {
                    Endpoint::X11 => ("x11", None),
                    Endpoint::DbusSession => ("dbus-session", None),
                    Endpoint::DbusSystem => ("dbus-system", None),
                    Endpoint::Unix(p) => ("unix", Some(p.to_string())),
                };
                v(&IpcView { endpoint, path })
            }
            Kind::Clock => v(&ClockView {
                source: policy.clock.as_ref().map_or("system", |c| match c.source {
                    ClockSource::System => "system",
                    ClockSource::Tzdata => "tzdata",
                }),
            }),
            Kind::Assert => {
                let f = &policy.assertions[i];
                v(&AssertView {
                    id: f.id.as_str(),
                    description: &f.description,
                })
            }
        },
    }
}

/// The fact's view with its kind first (`baseline` for the sandbox), as
/// `unenforceable` entries and `explain` show it.
pub fn kinded_fact_json(policy: &Policy, fact: FactRef) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    let kind = match fact {
        FactRef::Baseline => "baseline",
        FactRef::Fact(k, _) => k.as_str(),
    };
    map.insert("kind".to_owned(), kind.into());
    if let serde_json::Value::Object(view) = fact_json(policy, fact) {
        map.extend(view);
    }
    serde_json::Value::Object(map)
}

fn baseline_view(policy: &Policy) -> BaselineView {
    BaselineView {
        nested: !policy.nested.is_empty(),
        tmp_bound: policy.tmp_bind().is_some(),
        net: !policy.net.is_empty(),
        net_count: policy.net.len(),
        private_net: policy.net.iter().any(|n| n.private),
        public_net: policy.net.iter().any(|n| !n.private),
    }
}

/// Capabilities behind a fact. For the baseline: those behind each flag a
/// rule's `when` requires to be true (a rule that fires only because of
/// `nestedSandbox` is attributed to the capability that asked for it).
pub fn fact_caps(policy: &Policy, fact: FactRef, rule: Option<&Rule>) -> Vec<CapId> {
    match fact {
        FactRef::Baseline => {
            let mut caps = Vec::new();
            for (field, values) in rule.map(|r| r.when.as_slice()).unwrap_or_default() {
                if !values.contains(&WhenValue::Bool(true)) {
                    continue;
                }
                match field.as_str() {
                    "nested" => caps.extend(&policy.nested),
                    "tmp_bound" => caps.extend(
                        policy
                            .tmp_bind()
                            .map(|f| f.caps.clone())
                            .unwrap_or_default(),
                    ),
                    "net" => caps.extend(policy.net.iter().flat_map(|n| n.caps.iter())),
                    "private_net" => caps.extend(
                        policy
                            .net
                            .iter()
                            .filter(|n| n.private)
                            .flat_map(|n| n.caps.iter()),
                    ),
                    "public_net" => caps.extend(
                        policy
                            .net
                            .iter()
                            .filter(|n| !n.private)
                            .flat_map(|n| n.caps.iter()),
                    ),
                    _ => {}
                }
            }
            caps.sort_unstable();
            caps.dedup();
            caps
        }
        FactRef::Fact(kind, i) => match kind {
            Kind::Fs => policy.fs[i].caps.clone(),
            Kind::Net => policy.net[i].caps.clone(),
            Kind::Exec => policy.exec[i].caps.clone(),
            Kind::Env => policy.env[i].caps.clone(),
            Kind::Ipc => policy.ipc[i].caps.clone(),
            Kind::Clock => policy
                .clock
                .as_ref()
                .map(|c| c.caps.clone())
                .unwrap_or_default(),
            Kind::Assert => policy.assertions[i].caps.clone(),
        },
    }
}

/// All facts in firing order.
pub fn facts(policy: &Policy) -> Vec<FactRef> {
    let mut out = vec![FactRef::Baseline];
    for kind in Kind::ALL {
        let n = match kind {
            Kind::Fs => policy.fs.len(),
            Kind::Net => policy.net.len(),
            Kind::Exec => policy.exec.len(),
            Kind::Env => policy.env.len(),
            Kind::Ipc => policy.ipc.len(),
            Kind::Clock => usize::from(policy.clock.is_some()),
            Kind::Assert => policy.assertions.len(),
        };
        out.extend((0..n).map(|i| FactRef::Fact(kind, i)));
    }
    out
}

fn matches(rule: &Rule, view: &serde_json::Value) -> bool {
    rule.when.iter().all(|(field, values)| {
        let actual = &view[field.as_str()];
        values.iter().any(|v| match (v, actual) {
            (WhenValue::Bool(b), serde_json::Value::Bool(a)) => a == b,
            (WhenValue::Int(i), serde_json::Value::Number(n)) => n.as_i64() == Some(*i),
            (WhenValue::Str(s), serde_json::Value::String(a)) => a == s,
            _ => false,
        })
    })
}

/// Context values shared by every template of a compile.
pub fn base_context(
    policy: &Policy,
    target: &Target,
    options: &BTreeMap<String, OptionValue>,
) -> Value {
    let special_v4: Vec<String> = SPECIAL_V4.iter().map(|(a, l)| format!("{a}/{l}")).collect();
    let special_v6: Vec<String> = SPECIAL_V6.iter().map(|(a, l)| format!("{a}/{l}")).collect();
    minijinja::context! {
        target => minijinja::context! { name => target.name.clone(), format => target.format.as_str() },
        options => Value::from(Serde(options)),
        sandbox => Value::from(Serde(fact_json(policy, FactRef::Baseline))),
        special => minijinja::context! {
            ipv4 => special_v4,
            ipv6 => special_v6,
            ipv6_mapped => format!("{}/{}", V4_MAPPED.0, V4_MAPPED.1),
        },
    }
}

/// Fires every matching rule on every fact.
pub fn lower(
    policy: &Policy,
    target: &Target,
    renderer: &Renderer,
    base: &Value,
    caps_text: &dyn Fn(&[CapId]) -> Vec<String>,
) -> Result<Lowered, Vec<Diagnostic>> {
    let mut out = Lowered {
        fired: vec![false; target.rules.len()],
        ..Lowered::default()
    };
    let mut errors = Vec::new();
    for fact in facts(policy) {
        let kind = match fact {
            FactRef::Baseline => FactKind::Baseline,
            FactRef::Fact(k, _) => FactKind::Of(k),
        };
        let view = fact_json(policy, fact);
        // The view as a template value, converted once per fact and only if a rule renders.
        let mut view_value: Option<Value> = None;
        let mut lowered = false;
        for (ri, rule) in target.rules.iter().enumerate() {
            if rule.fact != kind || !matches(rule, &view) {
                continue;
            }
            lowered = true;
            out.fired[ri] = true;
            out.firings.push((ri, fact));
            let caps = fact_caps(policy, fact, Some(rule));
            if let Some(v) = rule.verdict {
                for c in &caps {
                    let e = out.verdicts.entry(*c).or_insert(v);
                    *e = (*e).max(v);
                }
            }
            let renders = (rule.template.is_some() && rule.slot.is_some())
                || rule.note.is_some()
                || rule.reason.is_some();
            if !renders {
                continue;
            }
            let ctx = &minijinja::context! {
                fact => view_value.get_or_insert_with(|| Value::from(Serde(&view))).clone(),
                capabilities => caps_text(&caps),
                ..base.clone()
            };
            if let (Some(template), Some(slot)) = (&rule.template, &rule.slot) {
                match renderer.fragment(template, ctx) {
                    Ok(text) => out.fragments.push(Fragment {
                        rule: ri,
                        fact,
                        slot: slot.clone(),
                        text,
                        caps: caps.clone(),
                    }),
                    Err(e) => errors.push(e),
                }
            }
            if rule.note.is_some() {
                match renderer.text(&note_name(target, &rule.id), ctx) {
                    Ok(n) => out.notes.push(n),
                    Err(e) => errors.push(e),
                }
            }
            if rule.reason.is_some() {
                match renderer.text(&reason_name(target, &rule.id), ctx) {
                    Ok(reason) => out.unenforced.push(Unenforced { fact, reason, caps }),
                    Err(e) => errors.push(e),
                }
            }
        }
        if !lowered && fact != FactRef::Baseline {
            out.unlowered.push(fact);
        }
        if errors.len() > 20 {
            break;
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{normalise, CapInfo};
    use crate::syntax::parse_capability;

    #[test]
    fn views_expose_exactly_the_documented_fields() {
        let caps = [
            "fs:read:/a",
            "net:connect:a.com:1",
            "exec:spawn:x",
            "env:read:X",
            "ipc:connect:x11",
            "clock:system",
            "assert:a",
        ];
        let policy = normalise(
            caps.iter()
                .map(|c| CapInfo {
                    tool: None,
                    index: 0,
                    capability: parse_capability(c).unwrap(),
                })
                .collect(),
        );
        for fact in facts(&policy) {
            let kind = match fact {
                FactRef::Baseline => FactKind::Baseline,
                FactRef::Fact(k, _) => FactKind::Of(k),
            };
            let view = fact_json(&policy, fact);
            let keys: Vec<&str> = view
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, kind.fields(), "{fact:?}");
        }
    }
}
