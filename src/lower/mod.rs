//! Stage 4: facts × rules → fragments, notes, verdicts.
//!
//! Rules fire in a fixed order: baseline rules first (once each), then facts
//! kind by kind (fs, net, exec, env, ipc, clock, assert) in fact order, each
//! fact against the rules in file order. Every rule whose `when` matches
//! fires; a fact that no rule matches is *unlowered*, which the caller turns
//! into an error (strict) or an `unenforceable` entry (permissive).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use minijinja::value::{Serde, Value};

use crate::capability::{Host, Kind};
use crate::diag::Diagnostic;
use crate::ir::{CapId, Policy, SPECIAL_V4, SPECIAL_V6, V4_MAPPED};
use crate::render::{note_name, reason_name, Renderer, Template};
use crate::rules::{FactKind, OptionValue, Rule, Target, Verdict, WhenValue};

mod view;
pub use view::{fact_json, kinded_fact_json, kinded_view, KindedView};
use view::{fact_kind, View};

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
                    "var_tmp_bound" | "run_bound" => caps.extend(
                        policy
                            .bind_of(if field == "run_bound" {
                                "/run"
                            } else {
                                "/var/tmp"
                            })
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
                    "fs_writable" => caps.extend(
                        policy
                            .fs
                            .iter()
                            .filter(|f| f.actions.writable())
                            .flat_map(|f| f.caps.iter()),
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

/// Context values shared by every template of a compile.
pub fn base_context(
    policy: &Policy,
    target: &Target,
    options: &BTreeMap<String, OptionValue>,
) -> Value {
    let special_v4: Vec<String> = SPECIAL_V4.iter().map(|(a, l)| format!("{a}/{l}")).collect();
    let special_v6: Vec<String> = SPECIAL_V6.iter().map(|(a, l)| format!("{a}/{l}")).collect();
    // Every declared destination at once, for rules that must decide before
    // any per-destination fragment (squid refuses undeclared names before
    // its special-range check resolves them).
    let (mut names, mut suffixes, mut ips, mut any) =
        (Vec::<String>::new(), Vec::new(), Vec::new(), false);
    for n in &policy.net {
        match &n.host {
            Host::Any => any = true,
            Host::Name(d) => names.push(d.as_str().to_owned()),
            Host::Wildcard(d) => suffixes.push(format!(".{}", d.as_str())),
            ip => ips.push(ip.to_string()),
        }
    }
    for list in [&mut names, &mut suffixes, &mut ips] {
        list.sort();
        list.dedup();
    }
    // Names and suffixes, minus every entry a suffix covers (`.x.com` covers
    // `x.com`, `a.x.com` and `.a.x.com`): squid refuses an acl holding both.
    let suffix_set: std::collections::HashSet<&str> = suffixes.iter().map(String::as_str).collect();
    // Covered when the entry (`x.com` or `.x.com`) is, or lies below, another
    // declared suffix: look up each of its label suffixes, not every pair.
    let covered = |e: &str| {
        let bare = e.trim_start_matches('.');
        bare.char_indices()
            .filter(|&(i, c)| i == 0 || (c != '.' && bare.as_bytes()[i - 1] == b'.'))
            .any(|(i, _)| {
                let candidate = format!(".{}", &bare[i..]);
                candidate != e && suffix_set.contains(candidate.as_str())
            })
    };
    let patterns: Vec<String> = names
        .iter()
        .chain(&suffixes)
        .filter(|e| !covered(e))
        .cloned()
        .collect();
    minijinja::context! {
        target => minijinja::context! { name => target.name.clone(), format => target.format.as_str() },
        options => Value::from(Serde(options)),
        sandbox => View::of(policy, FactRef::Baseline).to_value(),
        declared => minijinja::context! { any, names, suffixes, patterns, ips },
        special => minijinja::context! {
            ipv4 => special_v4,
            ipv6 => special_v6,
            ipv6_mapped => format!("{}/{}", V4_MAPPED.0, V4_MAPPED.1),
        },
    }
}

/// What lowering needs of one rule, resolved once per compile instead of once per fact.
struct Prepared<'a> {
    rule: &'a Rule,
    /// `when` with each field as its index into the view (`None`: not a
    /// field of the rule's fact kind, which never matches).
    when: Vec<(Option<usize>, &'a [WhenValue])>,
    /// Whether the policy's baseline meets `when_sandbox`: if not, the rule
    /// fires on no fact of this compile.
    sandbox_matches: bool,
    fragment: Option<(Template<'a>, &'a str)>,
    note: Option<Template<'a>>,
    reason: Option<Template<'a>>,
    /// Whether any of its templates may read `capabilities`. Formatting that
    /// text for every fact was a large part of lowering, and most templates
    /// never look at it; those get a context without it. Worked out when the
    /// rule first fires, as that compiles its templates.
    reads_capabilities: OnceCell<bool>,
}

impl<'a> Prepared<'a> {
    fn new(
        rule: &'a Rule,
        target: &Target,
        renderer: &'a Renderer,
        baseline: &View,
    ) -> Prepared<'a> {
        let fields = rule.fact.fields();
        let sandbox_fields = FactKind::Baseline.fields();
        let sandbox_when: Vec<(Option<usize>, &[WhenValue])> = rule
            .when_sandbox
            .iter()
            .map(|(field, values)| {
                let index = sandbox_fields.iter().position(|f| f == field);
                (index, values.as_slice())
            })
            .collect();
        let fragment = match (&rule.template, &rule.slot) {
            (Some(template), Some(slot)) => Some((renderer.template(template), slot.as_str())),
            _ => None,
        };
        let note = rule
            .note
            .as_ref()
            .map(|_| renderer.template(&note_name(target, &rule.id)));
        let reason = rule
            .reason
            .as_ref()
            .map(|_| renderer.template(&reason_name(target, &rule.id)));
        Prepared {
            rule,
            when: rule
                .when
                .iter()
                .map(|(field, values)| {
                    let index = fields.iter().position(|f| f == field);
                    (index, values.as_slice())
                })
                .collect(),
            sandbox_matches: baseline.matches(&sandbox_when),
            fragment,
            note,
            reason,
            reads_capabilities: OnceCell::new(),
        }
    }

    fn reads_capabilities(&self) -> bool {
        *self.reads_capabilities.get_or_init(|| {
            self.fragment
                .iter()
                .map(|(t, _)| t)
                .chain(&self.note)
                .chain(&self.reason)
                .any(|t| t.may_read("capabilities"))
        })
    }

    fn renders(&self) -> bool {
        self.fragment.is_some() || self.note.is_some() || self.reason.is_some()
    }
}

/// Fires every matching rule on every fact.
pub fn lower(
    policy: &Policy,
    target: &Target,
    renderer: &Renderer,
    base: &Value,
    caps_text: &(dyn Fn(&[CapId]) -> Vec<String> + Sync),
) -> Result<Lowered, Vec<Diagnostic>> {
    let baseline = View::of(policy, FactRef::Baseline);
    let rules: Vec<Prepared> = target
        .rules
        .iter()
        .map(|r| Prepared::new(r, target, renderer, &baseline))
        .collect();
    let mut lowered_kinds: Vec<FactKind> = Vec::new();
    for p in &rules {
        if !lowered_kinds.contains(&p.rule.fact) {
            lowered_kinds.push(p.rule.fact);
        }
    }
    let run = Run {
        policy,
        renderer,
        base,
        caps_text,
        rules: &rules,
        lowered_kinds: &lowered_kinds,
    };
    let facts = facts(policy);
    finish(run.lower(&facts), policy.caps.len())
}

/// The lowering of every fact, with the worst verdict per capability.
fn finish(part: Part, caps: usize) -> Result<Lowered, Vec<Diagnostic>> {
    // Worst verdict per capability, indexed by id: cheaper than a map update per firing.
    let mut verdicts: Vec<Option<Verdict>> = vec![None; caps];
    for (c, v) in part.verdicts {
        let all = &mut verdicts[c as usize];
        *all = (*all).max(Some(v));
    }
    let errors = part.errors;
    let mut out = Lowered {
        fragments: part.fragments,
        notes: part.notes,
        unenforced: part.unenforced,
        firings: part.firings,
        unlowered: part.unlowered,
        fired: part.fired,
        ..Lowered::default()
    };
    out.verdicts = verdicts
        .into_iter()
        .enumerate()
        .filter_map(|(id, v)| Some((id as CapId, v?)))
        .collect();
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What lowering a run of consecutive facts produced. Runs are joined in
/// fact order, which gives exactly what one pass over all facts gives.
struct Part {
    fragments: Vec<Fragment>,
    notes: Vec<String>,
    unenforced: Vec<Unenforced>,
    firings: Vec<(usize, FactRef)>,
    unlowered: Vec<FactRef>,
    fired: Vec<bool>,
    /// Every verdict given, in firing order; the worst per capability is taken when joining.
    verdicts: Vec<(CapId, Verdict)>,
    errors: Vec<Diagnostic>,
}

/// Everything lowering a fact needs.
struct Run<'a> {
    policy: &'a Policy,
    renderer: &'a Renderer,
    base: &'a Value,
    caps_text: &'a (dyn Fn(&[CapId]) -> Vec<String> + Sync),
    rules: &'a [Prepared<'a>],
    /// Fact kinds that have at least one rule.
    lowered_kinds: &'a [FactKind],
}

impl Run<'_> {
    fn lower(&self, facts: &[FactRef]) -> Part {
        let policy = self.policy;
        let mut out = Part {
            fragments: Vec::new(),
            notes: Vec::new(),
            unenforced: Vec::new(),
            firings: Vec::new(),
            unlowered: Vec::new(),
            fired: vec![false; self.rules.len()],
            verdicts: Vec::new(),
            errors: Vec::new(),
        };
        for &fact in facts {
            let kind = fact_kind(fact);
            // No rule for the kind (squid and fs, say): nothing to match, so no view.
            if !self.lowered_kinds.contains(&kind) {
                if fact != FactRef::Baseline {
                    out.unlowered.push(fact);
                }
                continue;
            }
            let view = View::of(policy, fact);
            // Built once per fact and only if a rule renders. A fact's capabilities
            // are the same for every rule except the baseline's, whose context with
            // them is therefore rebuilt per rule.
            let mut fact_value: Option<Value> = None;
            let mut lean_ctx: Option<Value> = None;
            let mut full_ctx: Option<Value> = None;
            let mut lowered = false;
            for (ri, prepared) in self.rules.iter().enumerate() {
                let rule = prepared.rule;
                if rule.fact != kind || !prepared.sandbox_matches || !view.matches(&prepared.when) {
                    continue;
                }
                lowered = true;
                out.fired[ri] = true;
                out.firings.push((ri, fact));
                let caps = fact_caps(policy, fact, Some(rule));
                if let Some(v) = rule.verdict {
                    out.verdicts.extend(caps.iter().map(|&c| (c, v)));
                }
                if !prepared.renders() {
                    continue;
                }
                let fact_value = fact_value.get_or_insert_with(|| view.to_value());
                let context = |capabilities: Option<Value>| match capabilities {
                    Some(capabilities) => minijinja::context! {
                        fact => fact_value.clone(),
                        capabilities,
                        ..self.base.clone()
                    },
                    None => minijinja::context! { fact => fact_value.clone(), ..self.base.clone() },
                };
                let ctx = if !prepared.reads_capabilities() {
                    lean_ctx.get_or_insert_with(|| context(None)).clone()
                } else {
                    match &full_ctx {
                        Some(ctx) if fact != FactRef::Baseline => ctx.clone(),
                        _ => full_ctx
                            .insert(context(Some(Value::from((self.caps_text)(&caps)))))
                            .clone(),
                    }
                };
                if let Some((template, slot)) = &prepared.fragment {
                    match self.renderer.fragment_of(template, &ctx) {
                        // An option-dependent fragment that is off writes no line at all.
                        Ok(text) if text.trim().is_empty() => {}
                        Ok(text) => out.fragments.push(Fragment {
                            rule: ri,
                            fact,
                            slot: (*slot).to_owned(),
                            text,
                            caps: caps.clone(),
                        }),
                        Err(e) => out.errors.push(e),
                    }
                }
                if let Some(template) = &prepared.note {
                    match self.renderer.text_of(template, &ctx) {
                        // A note template may render nothing when its option-dependent condition is off.
                        Ok(n) if n.trim().is_empty() => {}
                        Ok(n) => out.notes.push(n),
                        Err(e) => out.errors.push(e),
                    }
                }
                if let Some(template) = &prepared.reason {
                    match self.renderer.text_of(template, &ctx) {
                        Ok(reason) => out.unenforced.push(Unenforced { fact, reason, caps }),
                        Err(e) => out.errors.push(e),
                    }
                }
            }
            if !lowered && fact != FactRef::Baseline {
                out.unlowered.push(fact);
            }
            if out.errors.len() > 20 {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{normalise, CapInfo};
    use crate::syntax::parse_capability;

    /// One fact of every kind and every variant a view distinguishes.
    fn varied_policy() -> Policy {
        let caps = [
            "fs:read:/a",
            "fs:read,write:/b/*",
            "fs:read,write,create,delete:/tmp/**",
            "net:connect:a.com:1",
            "net:connect:*.b.com",
            "net:connect:*",
            "net:connect:*:8080",
            "net:connect:1.1.1.1:853",
            "net:connect:10.0.0.5:5432",
            "net:connect:\"2606:4700::1111\":443",
            "net:connect:\"fd00::1\"",
            "exec:spawn:x",
            "exec:spawn:chromium?nestedSandbox=true",
            "env:read:X",
            "env:inject:Y",
            "ipc:connect:x11",
            "ipc:connect:dbus:system",
            "ipc:connect:dbus:session",
            "ipc:connect:unix:/run/s.sock",
            "clock:tzdata",
            "assert:a:says so, in prose",
        ];
        crate::samples::policy(&caps)
    }

    /// One squid `dstdomain` acl refuses an entry another suffix covers.
    #[test]
    fn declared_patterns_drop_what_a_suffix_covers() {
        let policy = crate::samples::policy(&[
            "net:connect:x.com",
            "net:connect:a.x.com:443",
            "net:connect:*.x.com",
            "net:connect:*.b.x.com",
            "net:connect:bx.com",
            "net:connect:*.y.org",
            "net:connect:1.1.1.1",
        ]);
        let target = Target::load(&crate::assets::Assets::default(), "squid").unwrap();
        let options = crate::compile::resolve_options(&target, &[]).unwrap();
        let base = base_context(&policy, &target, &options);
        let declared = base.get_attr("declared").unwrap();
        let patterns: Vec<String> = declared
            .get_attr("patterns")
            .unwrap()
            .try_iter()
            .unwrap()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(patterns, ["bx.com", ".x.com", ".y.org"]);
    }

    #[test]
    fn nesting_indices_and_baseline_flags_are_in_the_views() {
        let caps = [
            "fs:read:/w/**",
            "fs:read,write,create,delete:/w/target/**",
            "fs:read:/other/**",
            "net:connect:*",
            "env:read:A",
            "env:inject:B",
        ];
        let policy = crate::samples::policy(&caps);
        let fs: Vec<serde_json::Value> = (0..policy.fs.len())
            .map(|i| fact_json(&policy, FactRef::Fact(Kind::Fs, i)))
            .collect();
        let by_path = |p: &str| fs.iter().find(|f| f["path"] == p).unwrap().clone();
        assert_eq!(by_path("/w/target")["under"], "/w");
        assert_eq!(by_path("/w/target")["under_readonly"], true);
        assert_eq!(by_path("/w")["under"], serde_json::Value::Null);
        assert_eq!(by_path("/other")["under_readonly"], false);
        for (i, f) in fs.iter().enumerate() {
            assert_eq!(f["index"], i, "{f}");
        }
        let base = fact_json(&policy, FactRef::Baseline);
        assert_eq!(base["writable_under_readonly"], true);
        assert_eq!(base["net_any"], true);
        assert_eq!(base["env"], true);
        assert_eq!(base["env_count"], 2);
        assert_eq!(base["fs_count"], 3);
    }

    #[test]
    fn views_expose_exactly_the_documented_fields() {
        let policy = varied_policy();
        for fact in facts(&policy) {
            let kind = fact_kind(fact);
            let view = fact_json(&policy, fact);
            let keys: Vec<&str> = view
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, kind.fields(), "{fact:?}");
            // The kinded view is the kind, then the same fields and values.
            let kinded = kinded_fact_json(&policy, fact);
            let kinded = kinded.as_object().unwrap();
            assert_eq!(kinded["kind"], kind.as_str(), "{fact:?}");
            assert_eq!(
                kinded.iter().skip(1).collect::<Vec<_>>(),
                view.as_object().unwrap().iter().collect::<Vec<_>>(),
                "{fact:?}"
            );
            // What templates can read as `fact.<field>`, and nothing else.
            let value = View::of(&policy, fact).to_value();
            let mut template_keys: Vec<String> = value
                .try_iter()
                .unwrap()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            let mut expected: Vec<&str> = kind.fields().to_vec();
            expected.sort_unstable();
            template_keys.sort_unstable();
            assert_eq!(template_keys, expected, "{fact:?}");
            assert!(value.get_attr("no_such_field").unwrap().is_undefined());
        }
    }

    /// The `when` matcher before views were typed: field lookup in the JSON view.
    fn json_matches(when: &[(String, Vec<WhenValue>)], view: &serde_json::Value) -> bool {
        when.iter().all(|(field, values)| {
            let actual = &view[field.as_str()];
            values.iter().any(|v| match (v, actual) {
                (WhenValue::Bool(b), serde_json::Value::Bool(a)) => a == b,
                (WhenValue::Int(i), serde_json::Value::Number(n)) => n.as_i64() == Some(*i),
                (WhenValue::Str(s), serde_json::Value::String(a)) => a == s,
                _ => false,
            })
        })
    }

    /// A generated 1,000-tool policy: thousands of facts.
    fn generated_policy() -> Policy {
        let bytes = crate::generate::manifest(1000, 10, 7);
        let source = crate::manifest::Source::new("gen.json", bytes.as_bytes());
        let manifest = crate::manifest::load(&source, bytes.as_bytes()).unwrap();
        let mut caps = Vec::new();
        for (tool, t) in manifest.tools.iter().enumerate() {
            for (index, raw) in t.capabilities.iter().enumerate() {
                caps.push(CapInfo {
                    tool: Some(tool),
                    index,
                    capability: parse_capability(&raw.text).unwrap(),
                });
            }
        }
        normalise(caps)
    }

    fn caps_text(ids: &[CapId]) -> Vec<String> {
        ids.iter().map(|c| format!("cap {c}")).collect()
    }

    /// A large policy whose templates fail on many facts reports the errors
    /// up to the fact that brings them past 20, then stops.
    #[test]
    fn lowering_stops_soon_after_twenty_errors() {
        let policy = generated_policy();
        // Read-only binds fail for paths with a `7` in them, which facts all over the list have.
        let dir = std::env::temp_dir().join(format!("capgate-lower-errors-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bwrap")).unwrap();
        std::fs::write(
            dir.join("bwrap/ro-bind.argv.j2"),
            "--ro-bind\n{{ fact.path }}\n{% if '7' in fact.path %}{{ no_such_variable }}{% endif %}{{ fact.path }}\n",
        )
        .unwrap();
        let assets = crate::assets::Assets {
            rules_dir: None,
            templates_dir: Some(dir.clone()),
        };
        let target = Target::load(&assets, "bwrap").unwrap();
        let renderer = Renderer::new(&assets, &target).unwrap();
        let options = crate::compile::resolve_options(&target, &[]).unwrap();
        let base = base_context(&policy, &target, &options);
        let errors = lower(&policy, &target, &renderer, &base, &caps_text).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let failing = policy
            .fs
            .iter()
            .filter(|f| f.path.as_str().contains('7'))
            .count();
        assert!(failing > 100, "{failing}");
        assert!(errors.len() > 20 && errors.len() < 30, "{}", errors.len());
    }

    #[test]
    fn typed_when_matches_as_the_json_view_did() {
        let policy = varied_policy();
        let probes = |actual: &serde_json::Value| -> Vec<WhenValue> {
            let mut out = vec![
                WhenValue::Bool(true),
                WhenValue::Bool(false),
                WhenValue::Int(0),
                WhenValue::Int(-1),
                WhenValue::Int(443),
                WhenValue::Str(String::new()),
                WhenValue::Str("name".into()),
                WhenValue::Str("read".into()),
            ];
            match actual {
                serde_json::Value::Number(n) => out.push(WhenValue::Int(n.as_i64().unwrap())),
                serde_json::Value::String(s) => out.push(WhenValue::Str(s.clone())),
                serde_json::Value::Array(items) => out.extend(
                    items
                        .iter()
                        .map(|i| WhenValue::Str(i.as_str().unwrap().to_owned())),
                ),
                _ => {}
            }
            out
        };
        let mut checked = 0;
        for fact in facts(&policy) {
            let json = fact_json(&policy, fact);
            let view = View::of(&policy, fact);
            let kind = fact_kind(fact);
            let mut fields: Vec<&str> = kind.fields().to_vec();
            fields.push("not_a_field");
            for field in &fields {
                let values = probes(&json[*field]);
                // Each probe alone, all of them at once, and none.
                let mut whens: Vec<Vec<WhenValue>> =
                    values.iter().map(|v| vec![v.clone()]).collect();
                whens.push(values.clone());
                whens.push(Vec::new());
                for values in whens {
                    let when = vec![(field.to_string(), values)];
                    let typed: Vec<(Option<usize>, &[WhenValue])> = when
                        .iter()
                        .map(|(f, v)| (kind.fields().iter().position(|k| k == f), v.as_slice()))
                        .collect();
                    assert_eq!(
                        view.matches(&typed),
                        json_matches(&when, &json),
                        "{fact:?} {when:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "{checked}");
    }
}
