//! Template checks when a target loads: every rule's fragment, note and
//! reason is rendered against sample policies before any manifest reaches
//! it, so a misspelt field (`fact.prot`), a filter that does not exist or a
//! `none` printed where a value was expected is a `TEMPLATE_INVALID` naming
//! the template, its line and the rule, at load.
//!
//! The samples hold one fact of every kind and every variant a view
//! distinguishes (nullable fields both ways: a net fact with and without a
//! port, with a domain and with an IP), plus an empty policy for the
//! baseline's `false` flags. The check runs the target's own lowering over
//! them, with the option defaults and with each boolean option flipped, so a
//! template sees exactly what it sees in a compile. A rule whose `when`
//! matches no sample fact is not rendered here.

use crate::compile::resolve_options;
use crate::diag::{Code, Diagnostic};
use crate::ir::{normalise, CapId, CapInfo, Policy};
use crate::lower;
use crate::render::Renderer;
use crate::rules::{OptionType, OptionValue, Target};
use crate::syntax::parse_capability;

/// One capability of every kind and variant, all values plain enough for
/// every escaper (no quotes, no spaces, even in the assertion's prose).
const SAMPLE: &[&str] = &[
    "fs:read:/srv/sample/file",
    "fs:read:/srv/sample/dir/*",
    "fs:read:/srv/sample/tree/**",
    "fs:read,write:/srv/sample/w/*",
    "fs:read,write,create,delete:/srv/sample/tree/rw/**",
    "fs:read,write,create,delete:/srv/sample/tree/log.txt",
    "fs:read,write,create,delete:/tmp/**",
    "fs:read,write,create,delete:/var/tmp/**",
    "fs:read,write,create,delete:/run/sample/**",
    "net:connect:sample.example.com:443",
    "net:connect:noport.example.com",
    "net:connect:localhost:8080",
    "net:connect:*.wild.example.com",
    "net:connect:*.wild443.example.com:443",
    "net:connect:*",
    "net:connect:*:8080",
    "net:connect:1.1.1.1:853",
    "net:connect:1.0.0.1",
    "net:connect:10.0.0.5:5432",
    "net:connect:10.0.0.6",
    "net:connect:\"2606:4700::1111\":443",
    "net:connect:\"fd00::1\"",
    "exec:spawn:git",
    "exec:spawn:chromium?nestedSandbox=true",
    "env:read:SAMPLE_READ",
    "env:inject:SAMPLE_TOKEN",
    "ipc:connect:x11",
    "ipc:connect:dbus:system",
    "ipc:connect:dbus:session",
    "ipc:connect:\"unix:/run/sample/app.sock\"",
    "clock:tzdata",
    "assert:sample.check:sample-assertion",
];

/// The ipc variants [`SAMPLE`] cannot hold at once, because they depend on
/// the rest of the policy: a unix socket and an X display no fs path holds,
/// and the system bus socket inside a declared fs path (`covered`).
/// [`samples`] renders both lists with and without net (rules with
/// `when_sandbox = { net = ... }`).
const SAMPLE_ALT: &[&str] = &[
    "fs:read:/run/dbus/system_bus_socket",
    "ipc:connect:dbus:system",
    "ipc:connect:\"unix:/srv/alt/app.sock\"",
    "ipc:connect:x11",
];

/// The policy of these capability strings, as server capabilities (tests
/// build theirs with it too).
pub(crate) fn policy(caps: &[&str]) -> Policy {
    normalise(
        caps.iter()
            .enumerate()
            .map(|(index, c)| CapInfo {
                tool: None,
                index,
                capability: parse_capability(c).unwrap_or_else(|e| panic!("capability {c}: {e:?}")),
            })
            .collect(),
    )
}

/// Every sample policy: [`SAMPLE`] and [`SAMPLE_ALT`], each with and without
/// net, and the empty one. Between them every ipc endpoint is covered and
/// not, with net and without.
fn samples() -> [Policy; 5] {
    let without_net: Vec<&str> = SAMPLE
        .iter()
        .copied()
        .filter(|c| !c.starts_with("net:"))
        .collect();
    let with_net: Vec<&str> = SAMPLE_ALT
        .iter()
        .copied()
        .chain(["net:connect:alt.example.com:443"])
        .collect();
    [
        policy(SAMPLE),
        policy(&without_net),
        policy(SAMPLE_ALT),
        policy(&with_net),
        policy(&[]),
    ]
}

/// The option settings the check renders under: the defaults, then each
/// boolean option flipped on its own.
fn option_variants(target: &Target) -> Vec<Vec<(String, String)>> {
    let mut out = vec![Vec::new()];
    for o in &target.options {
        if o.ty == OptionType::Boolean {
            let flipped = !matches!(o.default, OptionValue::Boolean(true));
            out.push(vec![(o.name.clone(), flipped.to_string())]);
        }
    }
    out
}

/// Renders every rule's templates of `target` against the samples; the first
/// failures found, each with what was being checked.
pub fn check_templates(target: &Target, renderer: &Renderer) -> Result<(), Vec<Diagnostic>> {
    let describe = |ids: &[CapId]| -> Vec<String> {
        ids.iter()
            .map(|_| "(sample capability)".to_owned())
            .collect()
    };
    for sample in samples() {
        for set in option_variants(target) {
            let options = resolve_options(target, &set)?;
            let base = lower::base_context(&sample, target, &options);
            let errors: Vec<Diagnostic> =
                match lower::lower(&sample, target, renderer, &base, &describe) {
                    Ok(_) => continue,
                    // A value an escaper refuses depends on the manifest, not on
                    // the template: compiles report it with the real value.
                    Err(errors) => errors
                        .into_iter()
                        .filter(|d| {
                            !matches!(d.code, Code::TemplateUnsafeValue | Code::OperatorPathUnsafe)
                        })
                        .collect(),
                };
            if !errors.is_empty() {
                let setting = if set.is_empty() {
                    "the option defaults".to_owned()
                } else {
                    format!("--set {}={}", set[0].0, set[0].1)
                };
                let mut out: Vec<Diagnostic> = Vec::new();
                for d in errors {
                    // The same template fails once per sample fact: report it once.
                    if out
                        .iter()
                        .any(|o| o.message == d.message && o.location == d.location)
                    {
                        continue;
                    }
                    let help = format!(
                        "{} (found when target `{}` loaded, by rendering its rules against capgate's sample facts with {setting}; docs/templates.md, \"Checked at load\")",
                        d.help_text(),
                        target.name
                    );
                    out.push(d.with_help(help));
                }
                return Err(out);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::Assets;

    #[test]
    fn samples_parse_and_cover_every_fact_kind() {
        let p = policy(SAMPLE);
        assert!(!p.fs.is_empty() && !p.net.is_empty() && !p.exec.is_empty());
        assert!(!p.env.is_empty() && !p.ipc.is_empty() && !p.assertions.is_empty());
        assert!(p.clock.is_some() && !p.nested.is_empty());
        assert!(p.net.iter().any(|n| n.port.is_none()) && p.net.iter().any(|n| n.private));
    }

    /// Between them the samples hold every ipc endpoint covered and not, each
    /// with net and without.
    #[test]
    fn samples_hold_every_ipc_variant() {
        let mut seen = std::collections::BTreeSet::new();
        for p in samples() {
            for i in 0..p.ipc.len() {
                let v = crate::lower::fact_json(
                    &p,
                    crate::lower::FactRef::Fact(crate::capability::Kind::Ipc, i),
                );
                seen.insert((
                    v["endpoint"].to_string(),
                    v["covered"] == true,
                    !p.net.is_empty(),
                ));
            }
        }
        for endpoint in ["x11", "dbus-system", "unix"] {
            for covered in [false, true] {
                for net in [false, true] {
                    let want = (format!("{endpoint:?}"), covered, net);
                    assert!(seen.contains(&want), "{want:?}: {seen:?}");
                }
            }
        }
    }

    /// Lowers every sample under every option setting of every built-in
    /// target, handing each result to `visit`.
    fn each_builtin_lowering(
        mut visit: impl FnMut(&Target, &Policy, &[(String, String)], &lower::Lowered),
    ) {
        for name in Assets::default().target_names().unwrap() {
            let assets = Assets::default();
            let target = Target::load(&assets, &name).unwrap();
            let renderer = Renderer::new(&assets, &target).unwrap();
            for sample in samples() {
                for set in option_variants(&target) {
                    let options = resolve_options(&target, &set).unwrap();
                    let base = lower::base_context(&sample, &target, &options);
                    let lowered = lower::lower(&sample, &target, &renderer, &base, &|ids| {
                        vec![String::new(); ids.len()]
                    })
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    visit(&target, &sample, &set, &lowered);
                }
            }
        }
    }

    /// A built-in target that lowers a kind lowers every variant of it: a
    /// variant no rule matches fails every strict compile that declares it.
    #[test]
    fn every_builtin_target_lowers_every_variant_of_its_kinds() {
        each_builtin_lowering(|target, sample, set, lowered| {
            let supported = target.supported_kinds();
            for fact in &lowered.unlowered {
                if let crate::lower::FactRef::Fact(kind, _) = fact {
                    assert!(
                        !supported.contains(kind),
                        "{} {set:?}: no rule lowers {}",
                        target.name,
                        crate::lower::fact_json(sample, *fact)
                    );
                }
            }
        });
    }

    /// The load check renders a rule only if it fires on a sample: every
    /// rendering rule of every built-in target does, under some option setting,
    /// so an operator's edited copy of any of them is checked at load.
    #[test]
    fn every_builtin_rendering_rule_fires_on_a_sample() {
        // Per target: each rule's id, whether it renders, and whether it fired.
        let mut rules: std::collections::BTreeMap<String, Vec<(String, bool, bool)>> =
            Default::default();
        each_builtin_lowering(|target, _, _, lowered| {
            let seen = rules.entry(target.name.clone()).or_insert_with(|| {
                target
                    .rules
                    .iter()
                    .map(|r| {
                        let renders =
                            r.template.is_some() || r.note.is_some() || r.reason.is_some();
                        (r.id.clone(), renders, false)
                    })
                    .collect()
            });
            for ((_, _, f), fired) in seen.iter_mut().zip(&lowered.fired) {
                *f |= fired;
            }
        });
        for (name, rules) in rules {
            let unchecked: Vec<&str> = rules
                .iter()
                .filter(|(_, renders, fired)| *renders && !fired)
                .map(|(id, _, _)| id.as_str())
                .collect();
            assert!(
                unchecked.is_empty(),
                "{name}: no sample fires {unchecked:?}"
            );
        }
    }

    #[test]
    fn every_builtin_target_passes_its_own_check() {
        for name in Assets::default().target_names().unwrap() {
            let assets = Assets::default();
            let target = Target::load(&assets, &name).unwrap();
            let renderer = Renderer::new(&assets, &target).unwrap();
            check_templates(&target, &renderer).unwrap_or_else(|e| panic!("{name}: {:?}", e));
        }
    }
}
