//! `capgate import`: capgate manifests from the permission data that MCP
//! registries publish — ToolHive's registry ([`toolhive`]), the Docker MCP
//! catalog's `server.yaml` ([`docker`]) and MCP `server.json` with ToolHive's
//! publisher extension ([`server_json`]).
//!
//! Every importer reads a located tree ([`tree`]; YAML through [`yaml`]),
//! records each capability with the source paths it came from and every
//! field it did not carry over ([`report`]), and checks each capability
//! against the grammar: one capgate refuses is dropped and reported, never
//! written. docs/import.md has the semantics table.

pub mod cli;
pub mod docker;
pub mod report;
pub mod server_json;
pub mod template;
pub mod toolhive;
pub mod tree;
pub mod write;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use report::ServerReport;
use tree::{join, Doc, Node};

use crate::diag::{quote, Code, Diagnostic};

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ToolHive's legacy registry (`registry.json` with `servers`).
    Toolhive,
    /// A Docker MCP catalog `server.yaml`.
    Docker,
    /// An MCP registry `server.json`.
    ServerJson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Toolhive => "toolhive",
            Format::Docker => "docker",
            Format::ServerJson => "server-json",
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the publisher says nothing about the network: no net capability
    /// instead of `net:connect:*`.
    pub assume_no_network: bool,
    /// `--param KEY=VALUE`, in order; a repeated key is a list.
    pub params: Vec<(String, String)>,
    /// `--server NAME`: only these servers (all when empty).
    pub servers: Vec<String>,
}

/// State shared by the importers of one run.
pub struct Ctx {
    pub assume_no_network: bool,
    pub params: BTreeMap<String, Vec<String>>,
    pub used: BTreeSet<String>,
    wanted: BTreeSet<String>,
    matched: BTreeSet<String>,
}

impl Ctx {
    /// Whether `name` was selected (every server when no --server was given).
    pub fn wanted(&mut self, name: &str) -> bool {
        if self.wanted.is_empty() {
            return true;
        }
        let yes = self.wanted.contains(name);
        if yes {
            self.matched.insert(name.to_owned());
        }
        yes
    }
}

/// The manifest fields an importer decided besides the capabilities.
#[derive(Debug, Clone)]
pub struct ManifestSpec {
    pub version: String,
    pub tools: Vec<String>,
}

/// One server as an importer returns it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub report: ServerReport,
    /// `None`: nothing to sandbox.
    pub manifest: Option<ManifestSpec>,
}

/// One imported server, ready to print or write.
#[derive(Debug, Clone)]
pub struct Server {
    pub report: ServerReport,
    pub manifest: Option<serde_json::Value>,
}

impl Server {
    pub fn name(&self) -> &str {
        &self.report.server
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub format: Format,
    pub assume_no_network: bool,
    pub params: BTreeMap<String, Vec<String>>,
    pub servers: Vec<Server>,
}

/// Imports `inputs` (file name, bytes). All or nothing: any error, and
/// nothing is returned but the diagnostics.
pub fn import(
    format: Format,
    inputs: &[(String, Vec<u8>)],
    options: &Options,
) -> Result<Outcome, Vec<Diagnostic>> {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, v) in &options.params {
        if k.trim().is_empty() || k.contains(char::is_whitespace) {
            errors.push(Diagnostic::new(
                Code::ImportParamInvalid,
                format!("--param {}: the name is empty or contains spaces", quote(k)),
            ));
        } else if v.is_empty() {
            errors.push(Diagnostic::new(
                Code::ImportParamInvalid,
                format!("--param {k}= has an empty value"),
            ));
        } else if v.contains([':', ',']) || v.chars().any(char::is_control) {
            // `:` separates a volume's parts and `,` a mount's options: a value
            // holding them would change the volume's mode or target.
            errors.push(Diagnostic::new(
                Code::ImportParamInvalid,
                format!(
                    "--param {k}={}: a value cannot contain `:`, `,` or control characters",
                    crate::diag::printable(v)
                ),
            ));
        }
        params.entry(k.clone()).or_default().push(v.clone());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut ctx = Ctx {
        assume_no_network: options.assume_no_network,
        params: params.clone(),
        used: BTreeSet::new(),
        wanted: options.servers.iter().cloned().collect(),
        matched: BTreeSet::new(),
    };
    let mut imported = Vec::new();
    for (file, bytes) in inputs {
        let doc = Doc { file };
        let root = match format {
            Format::Docker => yaml::parse(file, bytes),
            Format::Toolhive | Format::ServerJson => tree::from_json(file, bytes),
        };
        let result = root.and_then(|root| match format {
            Format::Toolhive => toolhive::import(&doc, &root, &mut ctx),
            Format::Docker => docker::import(&doc, &root, &mut ctx),
            Format::ServerJson => server_json::import(&doc, &root, &mut ctx),
        });
        match result {
            Ok(list) => imported.extend(list),
            Err(d) => errors.push(d),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for s in &options.servers {
        if !ctx.matched.contains(s) {
            errors.push(
                Diagnostic::new(
                    Code::ImportServerUnknown,
                    format!("--server {}: no server of that name in the input", quote(s)),
                )
                .with_help("the names are ToolHive's registry keys, the `name` of a server.yaml or server.json"),
            );
        }
    }
    for k in params.keys() {
        if !ctx.used.contains(k) {
            errors.push(Diagnostic::new(
                Code::ImportParamInvalid,
                format!("--param {k}: no imported server uses this parameter"),
            )
            .with_help("parameters are named as in the volume templates, e.g. --param filesystem.paths=/srv/data"));
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut servers = Vec::new();
    for Imported {
        report, manifest, ..
    } in imported
    {
        if let Some(first) = seen.insert(report.server.clone(), report.input.clone()) {
            errors.push(Diagnostic::new(
                Code::ImportServerName,
                format!(
                    "server {} appears twice (in {} and {})",
                    quote(&report.server),
                    quote(&first),
                    quote(&report.input)
                ),
            ));
            continue;
        }
        let manifest = manifest.map(|m| build_manifest(format, &report, &m));
        servers.push(Server { report, manifest });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Outcome {
        format,
        assume_no_network: options.assume_no_network,
        params,
        servers,
    })
}

fn build_manifest(format: Format, report: &ServerReport, spec: &ManifestSpec) -> serde_json::Value {
    let entry = if report.entry.is_empty() {
        String::new()
    } else {
        format!(" ({})", report.entry)
    };
    serde_json::json!({
        "name": report.server,
        "version": spec.version,
        "grammar": "0.0",
        "description": format!(
            "Imported by `capgate import {}` from {}{entry}. Review it with the import report before use.",
            format.as_str(), report.input
        ),
        "serverCapabilities": report.capabilities.iter().map(|c| c.capability.clone()).collect::<Vec<_>>(),
        "tools": spec.tools.iter().map(|t| serde_json::json!({"name": t, "capabilities": []})).collect::<Vec<_>>(),
    })
}

impl Outcome {
    /// `import-report.json`.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "format": self.format.as_str(),
            "assumeNoNetwork": self.assume_no_network,
            "params": self.params,
            "servers": self.servers.iter().map(|s| serde_json::to_value(&s.report).expect("report serialises")).collect::<Vec<_>>(),
        })
    }
}

/// The file stem for a server's manifest: the name with `/` (server.json
/// namespaces) written as `.`, which must then be a plain file name.
pub fn file_stem(name: &str) -> Result<String, Diagnostic> {
    let stem = name.replace('/', ".");
    let ok = !stem.is_empty()
        && stem.len() <= 128
        && stem.as_bytes()[0].is_ascii_alphanumeric()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !stem.contains("..")
        && !stem.eq_ignore_ascii_case("import-report");
    if ok {
        Ok(stem)
    } else {
        Err(Diagnostic::new(
            Code::ImportServerName,
            format!("server name {} cannot be used as a file name", quote(name)),
        )
        .with_help("with --out each manifest is written to DIR/<name>.json: names are letters, digits, `.`, `_`, `-` (and `/` for server.json namespaces), start with a letter or digit, no `..`, at most 128 bytes"))
    }
}

// ------------------------------------------------------------ shared semantics

/// The sandbox itself: ToolHive's `localhost` (the container) and loopback, in
/// every spelling the address parsers accept (`0::1`, `::ffff:127.0.0.1`).
pub fn loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.to_ascii_lowercase().ends_with(".localhost")
        || h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
        || h.parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// ToolHive (registry.json, and server.json through the registry's Go types)
/// decodes JSON with Go's `encoding/json`, which matches a key to a
/// field regardless of case (and folds `ſ` to `s`, the Kelvin sign to `k`):
/// `Network` is its `network`. A key that is such a variant of one capgate
/// reads is an error, never an ignored field (ignoring `Network` would read
/// the profile as "no restriction").
pub fn exact_keys(doc: &Doc, node: &Node, path: &str, known: &[&str]) -> Result<(), Diagnostic> {
    let fold = |k: &str| -> String {
        k.chars()
            .map(|c| match c {
                '\u{17F}' => 's',
                '\u{212A}' => 'k',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    };
    let tree::Value::Object(members) = &node.value else {
        return Ok(());
    };
    for (key, value) in members {
        if known.contains(&key.as_str()) {
            continue;
        }
        if let Some(field) = known.iter().find(|k| fold(k) == fold(key)) {
            return Err(doc.error(
                Code::ImportShape,
                value,
                &join(path, key),
                format!(
                    "ToolHive reads keys regardless of case, so this is its `{field}`: write it `{field}`"
                ),
            ));
        }
    }
    Ok(())
}

/// A mount's host path is literal: a `*` in it is a file name character to
/// the publisher's runtime but a glob (the whole tree) to capgate.
pub fn literal_path_error(host: &str) -> Option<String> {
    host.contains('*').then(|| {
        format!("{host} is a literal path to the publisher's runtime, where `*` is a file name character; in a capgate path it is a glob (the whole tree), which would grant more")
    })
}

/// `net:connect:HOST[:PORT]`, quoting IPv6 literals.
pub fn net_cap(host: &str, port: Option<u16>) -> String {
    let host = if host.contains(':') {
        format!("\"{host}\"")
    } else {
        host.to_owned()
    };
    match port {
        Some(p) => format!("net:connect:{host}:{p}"),
        None => format!("net:connect:{host}"),
    }
}

/// A path without trailing slashes (the grammar refuses them).
pub fn trim_path(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".to_owned()
    } else {
        t.to_owned()
    }
}

/// `env:inject` for secrets, `env:read` for other variables.
pub fn env_cap(rep: &mut ServerReport, name: &str, secret: bool, sources: Vec<String>) {
    let action = if secret { "inject" } else { "read" };
    rep.grant(format!("env:{action}:{name}"), sources, None);
}

/// The publisher says nothing about the network; its runtime allows all egress.
pub fn unknown_network(rep: &mut ServerReport, absent: &str, ctx: &Ctx) {
    rep.network = "unknown";
    if ctx.assume_no_network {
        rep.note(format!(
            "{absent} is absent: the publisher's runtime would allow all egress; --assume-no-network: no net capability"
        ));
    } else {
        rep.grant(
            "net:connect:*".to_owned(),
            vec![format!("{absent} (absent)")],
            Some("the publisher declares no network restriction, and its runtime then allows all egress".to_owned()),
        );
        rep.note(format!(
            "{absent} is absent: the publisher's runtime allows all egress, so the manifest grants net:connect:* (pass --assume-no-network to grant none)"
        ));
    }
}

/// The tag of an image reference, as the manifest version.
pub fn image_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once('@') {
        Some(_) => "unversioned".to_owned(),
        None => match last.rsplit_once(':') {
            Some((_, tag)) if !tag.is_empty() => tag.to_owned(),
            _ => "latest".to_owned(),
        },
    }
}

/// Why a field (by its last key) is not carried over.
pub fn reason(path: &str) -> String {
    let trimmed = path.trim_end_matches(|c: char| c.is_ascii_digit() || c == '[' || c == ']');
    let key = trimmed
        .rsplit(['.', '['])
        .next()
        .unwrap_or(trimmed)
        .trim_matches(|c| c == '"' || c == ']');
    let r = match key {
        "image" | "identifier" | "registryType" | "registry_type" | "registryBaseUrl" | "registry_base_url"
        | "runtimeHint" | "runtime_hint" | "fileSha256" | "file_sha256" => {
            "where the server comes from, not a permission: choose how to start it inside the sandbox"
        }
        "transport" | "target_port" | "url" | "headers" => "how a client talks to the server, not a permission",
        "args" | "command" | "runtimeArguments" | "runtime_arguments" | "packageArguments" | "package_arguments" => {
            "the server's command line: capgate compiles a sandbox, it does not start the server"
        }
        "required" | "isRequired" | "is_required" => "whether a value must be set: not a permission",
        "default" | "value" | "example" | "choices" | "format" | "variables" | "valueHint" | "value_hint" => {
            "a value or its constraints: manifests name variables and paths, they carry no values"
        }
        "description" | "about" | "title" | "overview" | "icon" | "icons" | "readme" => "prose, not a permission",
        "meta" | "metadata" | "tags" | "status" | "tier" | "stars" | "last_updated" | "provenance"
        | "repository" | "source" | "$schema" | "websiteUrl" | "category" | "tool_definitions_names" => {
            "catalog metadata, not a permission"
        }
        "user" => "the container user: capgate runs the server as the invoking user with no capabilities",
        "ports" => "published (inbound) ports: a capgate sandbox accepts no inbound connections",
        "volumes" => "a volume that grants no host path",
        "parameters" | "properties" | "type" | "items" => {
            "the publisher's schema for user settings; volume values come from --param"
        }
        "oauth" => "an OAuth flow run by the publisher's gateway: not a permission",
        "remote" | "remotes" => "a hosted endpoint: nothing runs locally for it",
        "_meta" => "publisher extensions; for a server with nothing to sandbox their permissions describe the hosted endpoint, not a local process",
        "dynamic" | "longLived" | "requirement" => "gateway behaviour, not a permission",
        "secrets" | "name" | "env" => "names a value, not a capability",
        "version" | "version_detail" => "version information, not a permission",
        _ => "not a permission capgate manifests express",
    };
    r.to_owned()
}
