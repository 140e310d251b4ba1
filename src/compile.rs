//! The pipeline: manifest bytes → artifact, plus the trace `explain` reads.
//!
//! [`Compiler`] holds what is per target (validated rules, the template
//! environment); [`Compiler::compile`] is per manifest, so batch compilation
//! builds the target once.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::artifact::{
    ArgvArtifact, Artifact, Assertion, CapabilityRef, ConfigArtifact, ConfigFile, Egress,
    Provenance, Unenforceable, UnenforcedRule, LAUNCHER_SLOT,
};
use crate::assets::Assets;
use crate::capability::{Capability, Kind};
use crate::diag::{CapContext, Code, Diagnostic, Location};
use crate::ir::{self, CapId, CapInfo, FoldMap, Policy};
use crate::lower::{self, FactRef, Lowered};
use crate::manifest::{self, Manifest, RawCap, Source};
use crate::render::{mark, Renderer};
use crate::rules::{ArtifactKind, OptionValue, Target};
use crate::syntax::{self, CapError};

/// Per-compile settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Unlowered facts become `unenforceable` entries instead of errors.
    pub permissive: bool,
    /// `--set NAME=VALUE` pairs, in order.
    pub set: Vec<(String, String)>,
}

/// A target ready to compile manifests.
pub struct Compiler {
    pub target: Target,
    renderer: Renderer,
}

/// The result of one compile.
pub struct Output {
    pub artifact: Artifact,
    pub trace: Trace,
}

/// Everything `explain` needs, as data.
pub struct Trace {
    pub manifest: Manifest,
    pub policy: Policy,
    pub lowered: Lowered,
    /// Output elements with the index of the fragment each came from: every
    /// output file's, one file after the other.
    pub elements: Vec<(String, Option<usize>)>,
    /// How many of `elements` each output file has, in the target's file order.
    pub file_lens: Vec<usize>,
    source: Source,
    /// Manifest byte offset of every capability, by [`CapId`].
    cap_offsets: Vec<usize>,
    /// Locations are computed on first use: only `explain` needs them.
    cap_locations: OnceLock<Vec<Location>>,
    pub options: BTreeMap<String, OptionValue>,
}

impl Trace {
    /// The raw string of a capability.
    pub fn cap_text(&self, id: CapId) -> &str {
        &self.raw_cap(id).text
    }

    /// The manifest location of a capability.
    pub fn cap_location(&self, id: CapId) -> &Location {
        &self
            .cap_locations
            .get_or_init(|| crate::source::locate_all(&self.source, &self.cap_offsets))[id as usize]
    }

    fn raw_cap(&self, id: CapId) -> &RawCap {
        raw_cap(&self.manifest, &self.policy.caps[id as usize])
    }

    /// The tool that declared a capability (`None`: serverCapabilities).
    pub fn cap_tool(&self, id: CapId) -> Option<&str> {
        self.policy.caps[id as usize]
            .tool
            .map(|t| self.manifest.tools[t].name.as_str())
    }
}

/// A manifest loaded, parsed and normalised without a target (`capgate diff`):
/// the same stages and the same located errors as [`Compiler::compile`].
pub struct Loaded {
    pub manifest: Manifest,
    pub policy: Policy,
    pub source: Source,
}

impl Loaded {
    /// The capability string as written and its manifest location.
    pub fn cap(&self, id: CapId) -> (&RawCap, Location) {
        let raw = raw_cap(&self.manifest, &self.policy.caps[id as usize]);
        (raw, self.source.location(raw.offset))
    }
}

/// Loads a manifest up to the normalised policy (no target, no rendering).
pub fn load_policy(name: &str, bytes: &[u8]) -> Result<Loaded, Vec<Diagnostic>> {
    let source = Source::new(name, bytes);
    let manifest = manifest::load(&source, bytes)?;
    let policy = ir::normalise(parse_capabilities(&manifest, &source)?);
    Ok(Loaded {
        manifest,
        policy,
        source,
    })
}

fn raw_cap<'m>(manifest: &'m Manifest, info: &CapInfo) -> &'m RawCap {
    match info.tool {
        Some(t) => &manifest.tools[t].capabilities[info.index],
        None => &manifest.server_capabilities[info.index],
    }
}

/// Resolves `--set` values against a target's declared options.
pub fn resolve_options(
    target: &Target,
    set: &[(String, String)],
) -> Result<BTreeMap<String, OptionValue>, Vec<Diagnostic>> {
    let mut values: BTreeMap<String, OptionValue> = target
        .options
        .iter()
        .map(|o| (o.name.clone(), o.default.clone()))
        .collect();
    let mut errors = Vec::new();
    for (name, text) in set {
        match target.options.iter().find(|o| &o.name == name) {
            None => errors.push(
                Diagnostic::new(
                    Code::OptionInvalid,
                    format!("target \"{}\" has no option \"{name}\"", target.name),
                )
                .with_help(format!(
                    "options of \"{}\": {}",
                    target.name,
                    target
                        .options
                        .iter()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            Some(o) => match o.parse(text) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                Err(e) => errors.push(Diagnostic::new(
                    Code::OptionInvalid,
                    format!("{e}, got {}", crate::diag::quote(text)),
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

impl Compiler {
    /// Loads and checks a target: its rules and every template it uses.
    pub fn new(assets: &Assets, target: &str) -> Result<Compiler, Vec<Diagnostic>> {
        let target = Target::load(assets, target)?;
        let renderer = Renderer::new(assets, &target)?;
        // Built-in rules and templates are checked by the test suite
        // (samples::tests): only operator files cost the check at load.
        if assets.rules_dir.is_some() || assets.templates_dir.is_some() {
            crate::samples::check_templates(&target, &renderer)?;
        }
        Ok(Compiler { target, renderer })
    }

    /// Compiles one manifest.
    pub fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        settings: &Settings,
    ) -> Result<Output, Vec<Diagnostic>> {
        let options = resolve_options(&self.target, &settings.set)?;
        let source = Source::new(name, bytes);
        let manifest = manifest::load(&source, bytes)?;
        let typed = |manifest: &Manifest| parse_capabilities(manifest, &source).map(ir::normalise);
        let hash = manifest.hash();
        let policy = typed(&manifest)?;
        let cap_offsets: Vec<usize> = policy
            .caps
            .iter()
            .map(|c| raw_cap(&manifest, c).offset)
            .collect();

        let describe = |ids: &[CapId]| -> Vec<String> {
            ids.iter()
                .map(|&id| {
                    let info = &policy.caps[id as usize];
                    let text = &raw_cap(&manifest, info).text;
                    match info.tool {
                        Some(t) => format!(
                            "{text} (tool \"{}\")",
                            crate::diag::tool_label(&manifest.tools[t].name)
                        ),
                        None => format!("{text} (serverCapabilities)"),
                    }
                })
                .collect()
        };
        let base = lower::base_context(&policy, &self.target, &options);
        let mut lowered = lower::lower(&policy, &self.target, &self.renderer, &base, &describe)?;

        let misplaced = self.read_options_in_writable(&policy, &options, &lowered);
        if !misplaced.is_empty() {
            let cap_locations = crate::source::locate_all(&source, &cap_offsets);
            return Err(misplaced
                .into_iter()
                .map(|(d, cap)| d.at(cap_locations[cap as usize].clone()))
                .collect());
        }

        if !lowered.unlowered.is_empty() {
            if settings.permissive {
                self.record_unlowered(&policy, &mut lowered);
            } else {
                let cap_locations = crate::source::locate_all(&source, &cap_offsets);
                return Err(self.unsupported(&policy, &lowered, &manifest, &cap_locations));
            }
        }

        let lists = || {
            let mut notes = lowered.notes.clone();
            notes.extend(widening_notes(&policy, &describe));
            notes.extend(link_notes(&policy, &describe));
            notes.extend(metadata_notes(&policy, &describe));
            (notes, unenforceable(&policy, &lowered, &manifest))
        };
        let (notes, unenforceable) = lists();
        let files = self.render_main(&base, &lowered)?;
        let file_lens: Vec<usize> = files.iter().map(Vec::len).collect();
        let provenance = Provenance::new(hash);
        let egress_list: Vec<Egress> = policy.net.iter().map(egress).collect();
        let assertions: Vec<Assertion> = policy
            .assertions
            .iter()
            .map(|a| Assertion {
                id: a.id.to_string(),
                description: a.description.clone(),
            })
            .collect();
        let artifact = match self.target.artifact {
            ArtifactKind::Argv => {
                let [elements] = &files[..] else {
                    unreachable!("the rules loader gives an argv target exactly one file")
                };
                // Elements of launcher-slot fragments go before the program, not into argv.
                let in_launcher = |owner: &Option<usize>| {
                    owner.is_some_and(|i| lowered.fragments[i].slot == LAUNCHER_SLOT)
                };
                let (launcher, argv): (Vec<_>, Vec<_>) =
                    elements.iter().partition(|(_, owner)| in_launcher(owner));
                let has_launcher = self.target.slots().contains(&LAUNCHER_SLOT);
                Artifact::Argv(ArgvArtifact {
                    argv: argv.into_iter().map(|(e, _)| e.clone()).collect(),
                    launcher: has_launcher
                        .then(|| launcher.into_iter().map(|(e, _)| e.clone()).collect()),
                    egress: egress_list,
                    env_injections: policy.env.iter().map(|e| e.name.to_string()).collect(),
                    assertions,
                    provenance,
                    notes,
                    unenforceable,
                    target: self.target.name.clone(),
                })
            }
            ArtifactKind::Config => {
                let mut written: Vec<ConfigFile> = self
                    .target
                    .files
                    .iter()
                    .zip(&files)
                    .map(|(file, lines)| ConfigFile {
                        filename: file.filename.clone().unwrap_or_default(),
                        config: lines
                            .iter()
                            .map(|(e, _)| e.as_str())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    })
                    .collect();
                let several = written.len() > 1;
                let first = if several {
                    written[0].clone()
                } else {
                    written.remove(0)
                };
                Artifact::Config(ConfigArtifact {
                    target: self.target.name.clone(),
                    config: first.config,
                    filename: first.filename,
                    files: several.then_some(written),
                    unenforceable,
                    provenance,
                    notes,
                    assertions,
                    egress: egress_list,
                })
            }
        };
        Ok(Output {
            artifact,
            trace: Trace {
                manifest,
                policy,
                lowered,
                elements: files.into_iter().flatten().collect(),
                file_lens,
                source,
                cap_offsets,
                cap_locations: OnceLock::new(),
                options,
            },
        })
    }

    fn render_main(
        &self,
        base: &minijinja::Value,
        lowered: &Lowered,
    ) -> Result<Vec<crate::render::FileElements>, Vec<Diagnostic>> {
        let mut slots: BTreeMap<&str, Vec<minijinja::Value>> = self
            .target
            .slots()
            .into_iter()
            .map(|s| (s, Vec::new()))
            .collect();
        for (i, f) in lowered.fragments.iter().enumerate() {
            slots
                .get_mut(f.slot.as_str())
                .expect("every fragment slot is a declared slot")
                .push(mark(i, &f.text));
        }
        let ctx = minijinja::context! { slots => slots, ..base.clone() };
        self.renderer
            .main(ctx, lowered.fragments.len())
            .map_err(|d| vec![d])
    }

    fn record_unlowered(&self, policy: &Policy, lowered: &mut Lowered) {
        // Per kind: the number of facts and the reason they share.
        let mut per_kind: BTreeMap<Kind, (usize, String)> = BTreeMap::new();
        for &fact in &lowered.unlowered {
            let FactRef::Fact(kind, _) = fact else {
                continue;
            };
            let (n, reason) = per_kind.entry(kind).or_insert_with(|| {
                (0, format!(
                    "target \"{}\" has no rule for {kind} capabilities; nothing enforces this one (--permissive)",
                    self.target.name
                ))
            });
            *n += 1;
            let caps = lower::fact_caps(policy, fact, None);
            for &c in &caps {
                lowered
                    .verdicts
                    .insert(c, crate::rules::Verdict::Unenforceable);
            }
            lowered.unenforced.push(lower::Unenforced {
                fact,
                reason: reason.clone(),
                caps,
            });
        }
        for (kind, (n, _)) in per_kind {
            lowered.notes.push(format!(
                "{kind}: {n} fact(s) not enforced by target \"{}\" — see unenforceable[] (--permissive)",
                self.target.name
            ));
        }
    }

    /// A host path option that the target's output uses (`path`, `read_path`,
    /// `read_path_list`: paths granted beside the declared ones, files the
    /// engine reads or writes at start) must not lie in a writable declared
    /// path: the server could replace it, or put a symlink in its place, and
    /// the next start would follow it (docs/security.md). The option types
    /// accept only normalised paths, so the text is what the host resolves.
    /// Each diagnostic comes with the capability to locate it at.
    fn read_options_in_writable(
        &self,
        policy: &Policy,
        options: &BTreeMap<String, OptionValue>,
        lowered: &Lowered,
    ) -> Vec<(Diagnostic, CapId)> {
        let writable: Vec<_> = policy.fs.iter().filter(|f| f.actions.writable()).collect();
        if writable.is_empty() {
            return Vec::new();
        }
        // Templates that write output: the entry templates and the fragments of
        // the rules that fired (a note grants nothing).
        let output_templates: Vec<&str> = self
            .target
            .files
            .iter()
            .map(|f| f.template.as_str())
            .chain(
                self.target
                    .rules
                    .iter()
                    .zip(&lowered.fired)
                    .filter(|(_, fired)| **fired)
                    .filter_map(|(r, _)| r.template.as_deref()),
            )
            .collect();
        let mut out = Vec::new();
        for option in self.target.options.iter().filter(|o| o.ty.is_host_path()) {
            let used = output_templates
                .iter()
                .any(|t| self.renderer.template(t).may_read(&option.name));
            let values = match options.get(&option.name) {
                Some(OptionValue::String(v)) => std::slice::from_ref(v),
                Some(OptionValue::List(vs)) => vs.as_slice(),
                _ => &[],
            };
            for value in values.iter().filter(|_| used) {
                let spellings = syntax::spellings(value);
                for fact in &writable {
                    let top = syntax::host_path(fact.path.as_str());
                    if !spellings.iter().any(|sp| syntax::tree_holds(&top, sp)) {
                        continue;
                    }
                    let d = Diagnostic::new(
                        Code::OptionInWritable,
                        format!(
                            "{} is writable and holds {value}, option `{}` of target \"{}\": a host path the target grants beside the declared paths or its engine reads at start, so the server could replace it (or put a symlink in its place) and the next start would follow it",
                            crate::diag::quote(fact.path.as_str()),
                            option.name,
                            self.target.name
                        ),
                    )
                    .with_help(format!(
                        "set `--set {}=...` to a path outside the writable declarations, or declare writable only the directories below {} that the server writes",
                        option.name, fact.path
                    ));
                    let cap = fact
                        .caps
                        .iter()
                        .copied()
                        .find(|&c| matches!(&policy.caps[c as usize].capability, Capability::Fs { actions, .. } if actions.writable()))
                        .unwrap_or(fact.caps[0]);
                    out.push((d, cap));
                }
            }
        }
        out
    }

    /// The reference's ADAPTER_UNSUPPORTED error, then one located error per
    /// capability that no rule lowers.
    fn unsupported(
        &self,
        policy: &Policy,
        lowered: &Lowered,
        manifest: &Manifest,
        cap_locations: &[Location],
    ) -> Vec<Diagnostic> {
        let q = |ks: &[Kind]| {
            ks.iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut unsupported: Vec<Kind> = lowered
            .unlowered
            .iter()
            .filter_map(|f| match f {
                FactRef::Fact(k, _) => Some(*k),
                FactRef::Baseline => None,
            })
            .collect();
        unsupported.dedup();
        let name = &self.target.name;
        let mut out = vec![Diagnostic::new(
            Code::AdapterUnsupported,
            format!(
                "Adapter \"{name}\" cannot lower capability kind(s) {} — present in policy {}, supported for \"{name}\" is {}. Choose a different target or re-run with --permissive (notes/unenforceable instead of fail-closed).",
                q(&unsupported),
                q(&policy.present_kinds()),
                q(&self.target.supported_kinds()),
            ),
        )];
        for &fact in &lowered.unlowered {
            let FactRef::Fact(fact_kind, _) = fact else {
                continue;
            };
            for c in lower::fact_caps(policy, fact, None) {
                let info = &policy.caps[c as usize];
                let raw = raw_cap(manifest, info);
                let declared = info.capability.kind();
                // ipc:connect:x11 also yields the env fact DISPLAY: say which fact failed.
                let what = if declared == fact_kind {
                    format!("this {declared} capability")
                } else {
                    format!("the {fact_kind} fact this {declared} capability implies")
                };
                let mut d = Diagnostic::new(
                    Code::AdapterUnsupported,
                    format!("no rule of target \"{name}\" lowers {what}"),
                )
                .at(cap_locations[c as usize].clone());
                d.cap = Some(CapContext {
                    tool: info
                        .tool
                        .map(|t| crate::diag::tool_label(&manifest.tools[t].name)),
                    index: info.index,
                    capability: raw.text.clone(),
                    span: 0..raw.text.len(),
                });
                out.push(d);
            }
        }
        if out.len() > 1 {
            out[0].location = out[1].location.clone();
        }
        out
    }
}

/// The artifact's `unenforceable[]` entries.
fn unenforceable(policy: &Policy, lowered: &Lowered, manifest: &Manifest) -> Vec<Unenforceable> {
    lowered
        .unenforced
        .iter()
        .map(|u| Unenforceable {
            rule: match u.fact {
                FactRef::Fact(Kind::Net, i) => UnenforcedRule::Net(egress(&policy.net[i])),
                f => UnenforcedRule::Other(lower::kinded_view(policy, f)),
            },
            reason: u.reason.clone(),
            capabilities: u
                .caps
                .iter()
                .map(|&c| {
                    let info = &policy.caps[c as usize];
                    CapabilityRef {
                        // The display form, as in notes: escaped, long names cut.
                        tool: info
                            .tool
                            .map(|t| crate::diag::tool_label(&manifest.tools[t].name)),
                        capability: raw_cap(manifest, info).text.clone(),
                    }
                })
                .collect(),
        })
        .collect()
}

fn egress(n: &ir::NetFact) -> Egress {
    Egress {
        host: n.host.to_string(),
        port: n.port.map(|p| p.get()),
        block_private: !n.private,
    }
}

/// Parses every capability string, collecting all grammar errors. A string
/// that occurs more than once (tools often repeat a capability) is parsed once.
pub(crate) fn parse_capabilities(
    manifest: &Manifest,
    source: &Source,
) -> Result<Vec<CapInfo>, Vec<Diagnostic>> {
    let lists = std::iter::once((None, &manifest.server_capabilities)).chain(
        manifest
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| (Some(i), &t.capabilities)),
    );
    // Parse each distinct string once.
    let mut slot: FoldMap<&str, usize> = FoldMap::default();
    let mut distinct: Vec<&str> = Vec::new();
    // Occurrences of each distinct string: its last use takes the parsed value, earlier ones clone it.
    let mut uses: Vec<u32> = Vec::new();
    let lists: Vec<_> = lists.collect();
    let mut slots: Vec<usize> = Vec::with_capacity(lists.iter().map(|(_, l)| l.len()).sum());
    for (_, list) in &lists {
        for raw in list.iter() {
            let i = *slot.entry(raw.text.as_str()).or_insert_with(|| {
                distinct.push(raw.text.as_str());
                uses.push(0);
                distinct.len() - 1
            });
            uses[i] += 1;
            slots.push(i);
        }
    }
    let mut parsed: Vec<Option<_>> = parse_distinct(&distinct).into_iter().map(Some).collect();

    let mut caps = Vec::with_capacity(slots.len());
    let mut errors = Vec::new();
    let mut error_offsets = Vec::new();
    let mut slots = slots.into_iter();
    for (tool, list) in lists {
        for (index, raw) in list.iter().enumerate() {
            let i = slots.next().expect("one slot per capability");
            uses[i] -= 1;
            let result = if uses[i] == 0 {
                parsed[i].take()
            } else {
                parsed[i].clone()
            };
            match result.expect("a string's last use comes after all others") {
                Ok(capability) => caps.push(CapInfo {
                    tool,
                    index,
                    capability,
                }),
                Err(e) => {
                    error_offsets.push(raw.offset);
                    let mut d = Diagnostic::new(e.code, e.message);
                    d.help = e.help;
                    d.cap = Some(CapContext {
                        tool: tool.map(|t| crate::diag::tool_label(&manifest.tools[t].name)),
                        index,
                        capability: raw.text.clone(),
                        span: e.span,
                    });
                    errors.push(d);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(caps)
    } else {
        for (d, location) in errors
            .iter_mut()
            .zip(crate::source::locate_all(source, &error_offsets))
        {
            d.location = Some(location);
        }
        Err(errors)
    }
}

/// Parses capability strings, keeping the input order.
fn parse_distinct(distinct: &[&str]) -> Vec<Result<Capability, CapError>> {
    distinct
        .iter()
        .map(|raw| syntax::parse_capability(raw))
        .collect()
}

/// A grant to a cloud metadata endpoint is allowed when declared, but never quietly.
fn metadata_notes(policy: &Policy, describe: &dyn Fn(&[CapId]) -> Vec<String>) -> Vec<String> {
    policy
        .net
        .iter()
        .filter(|n| n.is_metadata())
        .map(|n| {
            format!(
                "net: {} is a cloud instance-metadata endpoint; granting it (declared by {}) exposes the host's cloud credentials to the sandbox",
                n.host,
                describe(&n.caps[..1]).join("")
            )
        })
        .collect()
}

/// One note per bind that holds a declared path or socket only through an
/// alias link the host may or may not have (`/var/mail/s.sock` inside
/// `/var/spool` where `/var/mail` links to `/var/spool/mail`; `/usr/sbin/x`
/// inside `/usr/bin` on Arch only). Such a path gets no bind of its own (bound
/// on its own, its source would be walked through a directory the sandbox can
/// write), so the sandbox may not reach it at its declared path (links resolve
/// inside the sandbox's root): it fails closed, and the reviewer must be told.
fn link_notes(policy: &Policy, describe: &dyn Fn(&[CapId]) -> Vec<String>) -> Vec<String> {
    let beyond_sure_nesting = |bind: &str, path: &str| {
        !syntax::tree_holds(&syntax::sure_host_path(bind), &syntax::sure_host_path(path))
    };
    // (kind, bind, path, capability) for every such path, fs facts first.
    let mut held: Vec<(Kind, &str, &str, CapId)> = Vec::new();
    for f in &policy.fs {
        for &c in &f.caps {
            if let Capability::Fs { path, .. } = &policy.caps[c as usize].capability {
                // A capability of the fact's own spelling is held by it on every host.
                if path.path != f.path && beyond_sure_nesting(f.path.as_str(), path.path.as_str()) {
                    held.push((Kind::Fs, f.path.as_str(), path.path.as_str(), c));
                }
            }
        }
    }
    for ipc in &policy.ipc {
        if let crate::capability::Endpoint::Unix(socket) = &ipc.endpoint {
            if let Some(f) = policy.enclosing_bind(socket.as_str()) {
                if beyond_sure_nesting(f.path.as_str(), socket.as_str()) {
                    held.push((Kind::Ipc, f.path.as_str(), socket.as_str(), ipc.caps[0]));
                }
            }
        }
    }
    let mut notes: Vec<String> = Vec::new();
    for (n, &(kind, bind, path, cap)) in held.iter().enumerate() {
        // One note per bind and kind: the first path, and how many more.
        if held[..n]
            .iter()
            .any(|(k, b, _, _)| *k == kind && *b == bind)
        {
            continue;
        }
        let more = match held[n + 1..]
            .iter()
            .filter(|(k, b, _, _)| *k == kind && *b == bind)
            .count()
        {
            0 => String::new(),
            m => format!(" (and {m} more)"),
        };
        let bind_host = syntax::host_path(bind);
        let via = syntax::spellings(path)
            .into_iter()
            .find(|s| syntax::tree_holds(&bind_host, s))
            .unwrap_or_else(|| path.to_owned());
        let partial = syntax::PARTIAL_ALIASES
            .iter()
            .find(|(a, _)| {
                syntax::tree_holds(a, &syntax::sure_host_path(path))
                    || syntax::tree_holds(a, &syntax::sure_host_path(bind))
            })
            .and_then(|(alias, hosts)| {
                let (_, real) = syntax::HOST_ALIASES.iter().find(|(a, _)| a == alias)?;
                Some(format!(": {alias} is a link to {real} on {hosts} only"))
            })
            .unwrap_or_default();
        notes.push(format!(
            "{kind}: \"{path}\" (the host's \"{}\") is taken to lie in \"{bind}\", which holds it as \"{via}\"{partial}; it gets no bind of its own, so the sandbox may not reach it at its declared path (links resolve inside the sandbox's root, and on some hosts they lead elsewhere): declared by {}{more}",
            syntax::host_path(path),
            describe(&[cap]).join(""),
        ));
    }
    notes
}

/// One note per merge that gives capabilities more than they declared.
fn widening_notes(policy: &Policy, describe: &dyn Fn(&[CapId]) -> Vec<String>) -> Vec<String> {
    policy
        .widenings
        .iter()
        .map(|w| {
            let subject = match w.kind {
                Kind::Fs => format!("\"{}\"", policy.fs[w.fact].path),
                Kind::Net => format!("\"{}\"", policy.net[w.fact].host),
                k => k.to_string(),
            };
            let first = |ids: &[CapId]| describe(&ids[..1.min(ids.len())]).pop().unwrap_or_default();
            format!(
                "{}: {subject} is {} for the whole server because of {}{}; this widens {} capabilit{} that declared less (first: {}). One sandbox serves every tool.",
                w.kind,
                w.granted,
                first(&w.by),
                if w.by.len() > 1 { format!(" and {} more", w.by.len() - 1) } else { String::new() },
                w.widened.len(),
                if w.widened.len() == 1 { "y" } else { "ies" },
                first(&w.widened),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_empty(target: &str, set: &[(&str, &str)]) -> Result<Artifact, Vec<Diagnostic>> {
        let compiler = Compiler::new(&Assets::default(), target).unwrap();
        let settings = Settings {
            permissive: false,
            set: set
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        compiler
            .compile(
                "m.json",
                br#"{"name":"m","version":"1","tools":[]}"#,
                &settings,
            )
            .map(|o| o.artifact)
    }

    fn launcher_of(a: &Artifact) -> Option<Vec<String>> {
        match a {
            Artifact::Argv(a) => a.launcher.clone(),
            Artifact::Config(_) => panic!("argv artifact expected"),
        }
    }

    #[test]
    fn bwrap_launcher_drops_to_the_configured_ids() {
        let a = compile_empty(
            "bwrap",
            &[("launcher_uid", "4321"), ("launcher_gid", "8765")],
        )
        .unwrap();
        let l = launcher_of(&a).expect("bwrap has a launcher");
        assert_eq!(&l[..3], ["env", "-i", "setpriv"]);
        assert!(l.contains(&"--reuid=4321".to_owned()), "{l:?}");
        assert!(l.contains(&"--regid=8765".to_owned()), "{l:?}");
        assert_eq!(l.last().map(String::as_str), Some("--"));
        // The launcher's elements are not in argv.
        let Artifact::Argv(argv) = &a else {
            unreachable!()
        };
        assert!(!argv
            .argv
            .iter()
            .any(|e| l.contains(e) && e.starts_with("--re")));
        assert_eq!(
            argv.argv.first().map(String::as_str),
            Some("--unshare-user")
        );
    }

    #[test]
    fn unprivileged_launcher_sets_its_own_ids_and_keeps_groups() {
        // V7: a no-op for the user it is compiled for, a drop to that uid if
        // root starts it anyway, a failure for any other user.
        let a = compile_empty(
            "bwrap",
            &[
                ("root_launcher", "false"),
                ("launcher_uid", "1000"),
                ("launcher_gid", "1001"),
            ],
        )
        .unwrap();
        let want: Vec<String> = [
            "env",
            "-i",
            "setpriv",
            "--reuid=1000",
            "--regid=1001",
            "--keep-groups",
            "--inh-caps=-all",
            "--no-new-privs",
            "--",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(launcher_of(&a), Some(want));
    }

    #[test]
    fn docker_artifact_has_no_launcher_field() {
        let a = compile_empty("docker", &[]).unwrap();
        assert_eq!(launcher_of(&a), None);
        assert!(!a.to_json(false).contains("\"launcher\""));
    }

    #[test]
    fn launcher_ids_are_typed_and_never_root() {
        for (name, value) in [
            ("launcher_uid", "0"),
            ("launcher_gid", "0"),
            ("launcher_uid", "-1"),
            ("launcher_uid", "65534x"),
            ("launcher_uid", "4294967295"),
            ("root_launcher", "yes"),
        ] {
            let errors = compile_empty("bwrap", &[(name, value)])
                .err()
                .unwrap_or_default();
            assert!(
                errors.len() == 1 && errors[0].code == Code::OptionInvalid,
                "{name}={value}: {errors:?}"
            );
        }
    }

    /// A path that lies in a bind only through a partial alias says so (it is
    /// not reachable as declared where the two are separate directories);
    /// nesting that holds on every host does not.
    #[test]
    fn a_fold_through_a_partial_alias_says_so() {
        let notes = |caps: &[&str]| -> Vec<String> {
            let manifest = serde_json::json!({
                "name": "a", "version": "1",
                "tools": [{ "name": "t", "capabilities": caps }]
            });
            let compiler = Compiler::new(&Assets::default(), "bwrap").unwrap();
            let out = compiler
                .compile(
                    "m.json",
                    manifest.to_string().as_bytes(),
                    &Settings {
                        permissive: false,
                        set: vec![],
                    },
                )
                .unwrap();
            let json: serde_json::Value =
                serde_json::from_str(&out.artifact.to_json(false)).unwrap();
            serde_json::from_value(json["notes"].clone()).unwrap()
        };
        let taken = |n: &Vec<String>| -> Vec<String> {
            n.iter()
                .filter(|n| n.contains("is taken to lie in"))
                .cloned()
                .collect()
        };
        for (caps, path, bind) in [
            (
                [
                    "fs:read,write,create,delete:/usr/bin/x/**",
                    "fs:read:/usr/sbin/x/cfg/**",
                ],
                "/usr/sbin/x/cfg",
                "/usr/bin/x",
            ),
            (
                [
                    "fs:read,write,create,delete:/usr/sbin/x/**",
                    "fs:read:/usr/bin/x/cfg/**",
                ],
                "/usr/bin/x/cfg",
                "/usr/sbin/x",
            ),
            (
                ["fs:read:/usr/bin/x/**", "fs:read:/sbin/x/cfg/**"],
                "/sbin/x/cfg",
                "/usr/bin/x",
            ),
            (
                [
                    "fs:read,write,create,delete:/usr/lib/x/**",
                    "fs:read:/lib64/x/cfg/**",
                ],
                "/lib64/x/cfg",
                "/usr/lib/x",
            ),
        ] {
            let got = taken(&notes(&caps));
            assert_eq!(got.len(), 1, "{caps:?}: {got:?}");
            assert!(
                got[0].starts_with(&format!("fs: \"{path}\" (the host's"))
                    && got[0].contains(&format!("is taken to lie in \"{bind}\"")),
                "{caps:?}: {got:?}"
            );
        }
        // Nesting that holds on every host: one spelling, or a link every
        // distribution has (/lib is /usr/lib).
        for caps in [
            [
                "fs:read,write,create,delete:/usr/bin/x/**",
                "fs:read:/usr/bin/x/cfg/**",
            ],
            [
                "fs:read,write,create,delete:/lib/x/**",
                "fs:read:/usr/lib/x/cfg/**",
            ],
            [
                "fs:read,write,create,delete:/lib/x/**",
                "fs:read:/lib/x/cfg/**",
            ],
        ] {
            let all = notes(&caps);
            assert!(
                all.iter().any(|n| n.contains("for the whole server")),
                "{all:?}"
            );
            assert!(taken(&all).is_empty(), "{caps:?}: {all:?}");
        }
    }
}
