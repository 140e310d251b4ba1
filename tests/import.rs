//! `capgate import`: every vendored ToolHive entry, Docker catalog entry and
//! server.json (fixtures/import, see PROVENANCE) is imported, its report
//! snapshotted, every capability traced back to an input field that exists,
//! and every manifest compiled for bwrap and squid. The README's edge cases
//! of the corpus each have a named test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::Code;
use capgate::import::report::ServerReport;
use capgate::import::tree::{Node, Value};
use capgate::import::{self, Format, Options, Outcome, Server};

fn fixtures() -> PathBuf {
    common::root().join("fixtures/import")
}

fn read(paths: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    paths
        .iter()
        .map(|p| (common::display(p), std::fs::read(p).unwrap()))
        .collect()
}

fn run(format: Format, paths: &[PathBuf], options: &Options) -> Outcome {
    match import::import(format, &read(paths), options) {
        Ok(o) => o,
        Err(d) => panic!("{}", common::render_errors(&d)),
    }
}

fn run_err(format: Format, paths: &[PathBuf], options: &Options) -> Vec<capgate::diag::Diagnostic> {
    import::import(format, &read(paths), options).expect_err("import should fail")
}

fn docker_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("docker"))
        .unwrap()
        .map(|e| e.unwrap().path().join("server.yaml"))
        .collect();
    v.sort();
    v
}

fn server_json_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("server-json"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Every volume parameter the Docker catalog's templates need (the corpus has
/// no fixed host paths); the values are test paths.
const DOCKER_PARAMS: &[&str] = &[
    "aks.azure_dir",
    "aks.kubeconfig",
    "arm-mcp.workspace_path",
    "arm-mcp.ssh_private_key_path",
    "arm-mcp.ssh_known_hosts_path",
    "arxiv-mcp-server.storage_path",
    "ast-grep.path",
    "aws-diagram.output_dir",
    "cloud-run-mcp.credentials_path",
    "desktop-commander.paths",
    "elevenlabs.data",
    "filesystem.paths",
    "git.paths",
    "hoverfly-mcp-server.data",
    "inspektor-gadget.kubeconfig",
    "kubectl-mcp-server.kubeconfig",
    "kubernetes.config_path",
    "markdownify.paths",
    "markitdown.paths",
    "okta-mcp-server.log_path",
    "playwright-mcp-server.data",
    "rust-mcp-filesystem.allowed_directories",
    "schemacrawler-ai.volume.host_share",
];

fn docker_params() -> Vec<(String, String)> {
    let mut p = Vec::new();
    for k in DOCKER_PARAMS {
        let dir = format!("/srv/import-test/{}", k.replace('.', "-"));
        p.push((k.to_string(), dir));
        if k.ends_with(".paths") {
            p.push((k.to_string(), "/srv/import-test/second".to_owned()));
        }
    }
    p
}

fn server<'a>(o: &'a Outcome, name: &str) -> &'a Server {
    o.servers
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no server {name}"))
}

fn caps(s: &Server) -> Vec<String> {
    s.report
        .capabilities
        .iter()
        .map(|c| c.capability.clone())
        .collect()
}

fn manifest_caps(s: &Server) -> Vec<String> {
    s.manifest.as_ref().expect("a manifest")["serverCapabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn sources_of<'a>(r: &'a ServerReport, cap: &str) -> &'a [String] {
    &r.capabilities
        .iter()
        .find(|c| c.capability == cap)
        .unwrap_or_else(|| panic!("{} has no {cap}: {:?}", r.server, r.capabilities))
        .sources
}

fn not_carried<'a>(r: &'a ServerReport, source: &str) -> &'a str {
    &r.not_carried_over
        .iter()
        .find(|n| n.source == source)
        .unwrap_or_else(|| {
            panic!(
                "{}: {source} is not listed: {:?}",
                r.server, r.not_carried_over
            )
        })
        .reason
}

// ------------------------------------------------------- source path resolution

/// Resolves `a.b[0]["x.y"]` in a located tree.
fn resolve<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut node = root;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap();
            let key: String = serde_json::from_str(&format!("\"{}\"", &r[..end])).unwrap();
            node = node.get(&key)?;
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap();
            let i: usize = r[..end].parse().unwrap();
            let Value::Array(items) = &node.value else {
                return None;
            };
            node = items.get(i)?;
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            node = node.get(&rest[..end])?;
            rest = &rest[end..];
        }
    }
    Some(node)
}

fn load(format: Format, path: &Path) -> Node {
    let bytes = std::fs::read(path).unwrap();
    match format {
        Format::Docker => capgate::import::yaml::parse("f", &bytes).unwrap(),
        _ => capgate::import::tree::from_json("f", &bytes).unwrap(),
    }
}

/// Every source path of every capability, dropped capability and
/// not-carried-over field exists in the input (or, for `(absent)`, does not),
/// and every `--param` source was given.
fn check_traceable(format: Format, outcome: &Outcome) {
    for s in &outcome.servers {
        let root = load(format, &common::root().join(&s.report.input));
        let mut all: Vec<&String> = Vec::new();
        for c in &s.report.capabilities {
            assert!(
                !c.sources.is_empty(),
                "{}: {} has no source",
                s.name(),
                c.capability
            );
            all.extend(&c.sources);
        }
        for d in &s.report.dropped {
            all.extend(&d.sources);
        }
        all.extend(s.report.not_carried_over.iter().map(|n| &n.source));
        for src in all {
            if let Some(p) = src.strip_prefix("--param ") {
                assert!(
                    outcome.params.contains_key(p),
                    "{}: {src} was not given",
                    s.name()
                );
            } else if let Some(p) = src.strip_suffix(" (absent)") {
                assert!(
                    resolve(&root, p).is_none(),
                    "{}: {p} is said to be absent",
                    s.name()
                );
            } else {
                assert!(
                    resolve(&root, src).is_some(),
                    "{}: source {src} does not resolve",
                    s.name()
                );
            }
        }
    }
}

/// The manifest holds exactly the report's capabilities, and the network
/// verdict bounds the net capabilities (the over-grant guard).
fn check_consistent(outcome: &Outcome) {
    for s in &outcome.servers {
        let Some(_) = &s.manifest else {
            assert_eq!(s.report.status, "nothing-to-sandbox");
            assert!(s.report.capabilities.is_empty(), "{}", s.name());
            continue;
        };
        assert_eq!(manifest_caps(s), caps(s), "{}", s.name());
        let net: Vec<String> = caps(s)
            .into_iter()
            .filter(|c| c.starts_with("net:"))
            .collect();
        match s.report.network {
            "none" => assert!(net.is_empty(), "{}: network none but {net:?}", s.name()),
            "allow-list" => assert!(
                !net.iter().any(|c| c == "net:connect:*"),
                "{}: an allow-list granted everything",
                s.name()
            ),
            "all" => assert_eq!(net, ["net:connect:*"], "{}", s.name()),
            "unknown" if outcome.assume_no_network => assert!(net.is_empty(), "{}", s.name()),
            "unknown" => assert_eq!(net, ["net:connect:*"], "{}", s.name()),
            other => panic!("{}: network {other}", s.name()),
        }
    }
}

/// Every manifest compiles for bwrap (strict) and squid (permissive: squid
/// lowers only net).
fn check_compiles(outcome: &Outcome) -> usize {
    let bwrap = Compiler::new(&Assets::default(), "bwrap").unwrap();
    let squid = Compiler::new(&Assets::default(), "squid").unwrap();
    let mut n = 0;
    for s in &outcome.servers {
        let Some(m) = &s.manifest else { continue };
        let bytes = serde_json::to_vec_pretty(m).unwrap();
        for (compiler, permissive) in [(&bwrap, false), (&squid, true)] {
            let settings = Settings {
                permissive,
                set: vec![],
            };
            if let Err(d) = compiler.compile(s.name(), &bytes, &settings) {
                panic!(
                    "{} does not compile:\n{}",
                    s.name(),
                    common::render_errors(&d)
                );
            }
        }
        n += 1;
    }
    n
}

fn snapshot(name: &str, outcome: &Outcome) {
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!(format!("import-{name}"), outcome.report());
    });
}

// ------------------------------------------------------------ whole corpus

#[test]
fn imports_every_toolhive_entry() {
    let path = fixtures().join("toolhive/registry.json");
    let o = run(Format::Toolhive, &[path], &Options::default());
    assert_eq!(o.servers.len(), 40);
    check_traceable(Format::Toolhive, &o);
    check_consistent(&o);
    assert_eq!(check_compiles(&o), 40);
    snapshot("toolhive-registry", &o);
}

#[test]
fn imports_all_328_docker_entries() {
    let files = docker_files();
    assert_eq!(files.len(), 328);
    let options = Options {
        params: docker_params(),
        ..Options::default()
    };
    let o = run(Format::Docker, &files, &options);
    assert_eq!(o.servers.len(), 328);
    let kinds = |k: &str| {
        files
            .iter()
            .filter(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .contains(&format!("\ntype: {k}\n"))
            })
            .count()
    };
    let sandboxed = o.servers.iter().filter(|s| s.manifest.is_some()).count();
    assert_eq!(sandboxed, kinds("server"));
    assert_eq!(o.servers.len() - sandboxed, kinds("remote") + kinds("poci"));
    check_traceable(Format::Docker, &o);
    check_consistent(&o);
    assert_eq!(check_compiles(&o), sandboxed);
    snapshot("docker-catalog", &o);
}

#[test]
fn imports_every_server_json() {
    let files = server_json_files();
    let o = run(Format::ServerJson, &files, &Options::default());
    assert_eq!(o.servers.len(), files.len());
    check_traceable(Format::ServerJson, &o);
    check_consistent(&o);
    check_compiles(&o);
    snapshot("server-json", &o);
}

#[test]
fn imports_own_shapes() {
    let th = run(
        Format::Toolhive,
        &[fixtures().join("own/toolhive-edge.json")],
        &Options::default(),
    );
    let own_docker: Vec<PathBuf> = [
        "fixed-mounts",
        "both-network",
        "no-network-info",
        "engine-socket",
    ]
    .iter()
    .map(|d| fixtures().join(format!("own/docker/{d}/server.yaml")))
    .collect();
    let dk = run(
        Format::Docker,
        &own_docker,
        &Options {
            params: vec![("engine-socket.workdir".into(), "/srv/work".into())],
            ..Options::default()
        },
    );
    let sj_files: Vec<PathBuf> = ["npm", "pypi", "nuget-snake-case", "multi-package"]
        .iter()
        .map(|f| fixtures().join(format!("own/server-json/{f}.json")))
        .collect();
    let sj = run(Format::ServerJson, &sj_files, &Options::default());
    for (f, o, name) in [
        (Format::Toolhive, &th, "own-toolhive"),
        (Format::Docker, &dk, "own-docker"),
        (Format::ServerJson, &sj, "own-server-json"),
    ] {
        check_traceable(f, o);
        check_consistent(o);
        check_compiles(o);
        snapshot(name, o);
    }
}

// ------------------------------------------------- README edge cases (ToolHive)

fn toolhive(options: &Options) -> Outcome {
    run(
        Format::Toolhive,
        &[fixtures().join("toolhive/registry.json")],
        options,
    )
}

#[test]
fn toolhive_netbird_insecure_allow_all_with_hosts_is_called_out() {
    let o = toolhive(&Options::default());
    let s = server(&o, "netbird");
    assert_eq!(s.report.network, "all");
    assert!(caps(s).contains(&"net:connect:*".to_owned()));
    assert!(!caps(s).iter().any(|c| c.contains("netbird.io")));
    assert!(not_carried(
        &s.report,
        "servers.netbird.permissions.network.outbound.allow_host[0]"
    )
    .contains("contradictory"));
    assert!(s.report.notes.iter().any(|n| n.contains("contradicts")));
}

#[test]
fn toolhive_memory_ports_without_hosts_is_any_host_on_those_ports() {
    let o = toolhive(&Options::default());
    let s = server(&o, "memory");
    let net: Vec<String> = caps(s)
        .into_iter()
        .filter(|c| c.starts_with("net:"))
        .collect();
    assert_eq!(net, ["net:connect:*:443"]);
    assert_eq!(
        sources_of(&s.report, "net:connect:*:443"),
        ["servers.memory.permissions.network.outbound.allow_port[0]"]
    );
}

#[test]
fn toolhive_insecure_allow_all_ignores_the_port_list() {
    let o = toolhive(&Options::default());
    for name in ["fetch", "grafana", "playwright", "mongodb"] {
        let s = server(&o, name);
        let net: Vec<String> = caps(s)
            .into_iter()
            .filter(|c| c.starts_with("net:"))
            .collect();
        assert_eq!(net, ["net:connect:*"], "{name}");
        let p = format!("servers.{name}.permissions.network.outbound.allow_port[0]");
        assert!(not_carried(&s.report, &p).contains("every port"), "{name}");
    }
}

#[test]
fn toolhive_localhost_is_the_sandbox_and_dropped() {
    let o = toolhive(&Options::default());
    for name in ["dolt", "mcp-neo4j-cypher"] {
        let s = server(&o, name);
        assert!(!caps(s).iter().any(|c| c.contains("localhost")), "{name}");
        assert!(
            s.report
                .dropped
                .iter()
                .any(|d| d.capability == "net:connect:localhost"),
            "{name}"
        );
        assert!(
            s.report.notes.iter().any(|n| n.contains("localhost")),
            "{name}"
        );
        // The other hosts keep their ports: AND of hosts and ports.
        assert!(
            caps(s)
                .iter()
                .any(|c| c.ends_with(":443") && !c.contains('*') || c.contains("*.")),
            "{name}"
        );
    }
    let dolt = server(&o, "dolt");
    for port in [3306, 443, 80, 8080] {
        assert!(caps(dolt).contains(&format!("net:connect:dolthub.com:{port}")));
        assert!(caps(dolt).contains(&format!("net:connect:*.dolthub.com:{port}")));
    }
}

#[test]
fn toolhive_localhost_only_list_is_deny_all_not_any_host() {
    let o = run(
        Format::Toolhive,
        &[fixtures().join("own/toolhive-edge.json")],
        &Options::default(),
    );
    let s = server(&o, "localhost-only");
    assert_eq!(s.report.network, "none");
    assert!(
        !caps(s).iter().any(|c| c.starts_with("net:")),
        "{:?}",
        caps(s)
    );
}

#[test]
fn toolhive_leading_dot_is_the_apex_and_every_subdomain() {
    let o = toolhive(&Options::default());
    for (name, apex) in [
        ("sentry", "sentry.io"),
        ("supabase", "supabase.co"),
        ("atlassian", "atlassian.net"),
        ("azure", "blob.core.windows.net"),
    ] {
        let s = server(&o, name);
        assert!(
            caps(s).contains(&format!("net:connect:{apex}:443")),
            "{name}: {:?}",
            caps(s)
        );
        assert!(
            caps(s).contains(&format!("net:connect:*.{apex}:443")),
            "{name}"
        );
    }
    // A bare host is exact: no wildcard for it.
    let s = server(&o, "notion");
    assert!(caps(s).contains(&"net:connect:api.notion.com:443".to_owned()));
    assert!(!caps(s).iter().any(|c| c.contains("*.api.notion.com")));
}

#[test]
fn toolhive_secrets_inject_other_variables_read() {
    let o = toolhive(&Options::default());
    let s = server(&o, "github");
    assert!(caps(s).contains(&"env:inject:GITHUB_PERSONAL_ACCESS_TOKEN".to_owned()));
    assert!(caps(s).contains(&"env:read:GITHUB_HOST".to_owned()));
}

#[test]
fn toolhive_empty_outbound_is_deny_all() {
    let o = toolhive(&Options::default());
    for name in ["everything", "filesystem", "git", "aws-diagram"] {
        let s = server(&o, name);
        assert_eq!(s.report.network, "none", "{name}");
        assert!(!caps(s).iter().any(|c| c.starts_with("net:")), "{name}");
    }
}

#[test]
fn toolhive_without_network_section_defaults_to_all_or_none() {
    let path = fixtures().join("own/toolhive-edge.json");
    let o = run(
        Format::Toolhive,
        std::slice::from_ref(&path),
        &Options::default(),
    );
    for name in ["no-permissions", "network-without-outbound"] {
        let s = server(&o, name);
        assert_eq!(s.report.network, "unknown");
        assert!(caps(s).contains(&"net:connect:*".to_owned()), "{name}");
        assert!(
            s.report
                .notes
                .iter()
                .any(|n| n.contains("--assume-no-network")),
            "{name}"
        );
    }
    let o = run(
        Format::Toolhive,
        &[path],
        &Options {
            assume_no_network: true,
            ..Options::default()
        },
    );
    for name in ["no-permissions", "network-without-outbound"] {
        assert!(
            !caps(server(&o, name)).iter().any(|c| c.starts_with("net:")),
            "{name}"
        );
    }
}

#[test]
fn toolhive_refused_capabilities_are_dropped_with_their_code() {
    let o = run(
        Format::Toolhive,
        &[fixtures().join("own/toolhive-edge.json")],
        &Options::default(),
    );
    let r = &server(&o, "refused").report;
    use capgate::import::report::dropped_code;
    assert_eq!(
        dropped_code(r, "net:connect:0.0.0.0:443"),
        Some(Code::CapNetHostSpecial)
    );
    assert_eq!(
        dropped_code(r, "env:read:LD_PRELOAD"),
        Some(Code::CapEnvDangerous)
    );
    assert_eq!(
        dropped_code(r, "env:read:lower_case"),
        Some(Code::CapEnvName)
    );
    assert!(!manifest_caps(server(&o, "refused"))
        .iter()
        .any(|c| c.contains("LD_PRELOAD")));
}

// --------------------------------------------------- README edge cases (Docker)

fn docker(names: &[&str], params: &[(&str, &str)]) -> Outcome {
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let own = fixtures().join(format!("own/docker/{n}/server.yaml"));
            if own.exists() {
                own
            } else {
                fixtures().join(format!("docker/{n}/server.yaml"))
            }
        })
        .collect();
    let options = Options {
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    };
    run(Format::Docker, &files, &options)
}

#[test]
fn docker_kafka_wildcard_host_is_any_host_on_the_port() {
    let o = docker(&["kafka-schema-reg-mcp"], &[]);
    let s = server(&o, "kafka-schema-reg-mcp");
    let net: Vec<String> = caps(s)
        .into_iter()
        .filter(|c| c.starts_with("net:"))
        .collect();
    assert_eq!(net, ["net:connect:*:8081", "net:connect:*:443"]);
    assert_eq!(
        sources_of(&s.report, "net:connect:*:8081"),
        ["run.allowHosts[0]"]
    );
}

#[test]
fn docker_obsidian_host_access_through_env_is_not_a_network_grant() {
    let o = docker(&["obsidian"], &[]);
    let s = server(&o, "obsidian");
    assert!(caps(s).contains(&"env:read:OBSIDIAN_HOST".to_owned()));
    assert!(caps(s).contains(&"env:inject:OBSIDIAN_API_KEY".to_owned()));
    assert!(!caps(s).iter().any(|c| c.contains("host.docker.internal")));
    assert!(s
        .report
        .notes
        .iter()
        .any(|n| n.contains("host.docker.internal")));
}

#[test]
fn docker_sentry_secret_in_argv_is_reported() {
    let o = docker(&["sentry"], &[]);
    let s = server(&o, "sentry");
    assert!(caps(s).contains(&"env:inject:SENTRY_AUTH_TOKEN".to_owned()));
    assert!(s
        .report
        .notes
        .iter()
        .any(|n| n.contains("SENTRY_AUTH_TOKEN") && n.contains("argv")));
    assert!(s
        .report
        .not_carried_over
        .iter()
        .any(|n| n.source.starts_with("run.command")));
}

#[test]
fn docker_disable_network_with_parameterised_volumes() {
    let o = docker(
        &["filesystem", "rust-mcp-filesystem", "ast-grep"],
        &[
            ("filesystem.paths", "/srv/a"),
            ("filesystem.paths", "/srv/b/"),
            ("rust-mcp-filesystem.allowed_directories", "/srv/c"),
            ("ast-grep.path", "/srv/code"),
        ],
    );
    for name in ["filesystem", "rust-mcp-filesystem", "ast-grep"] {
        let s = server(&o, name);
        assert_eq!(s.report.network, "none", "{name}");
        assert!(!caps(s).iter().any(|c| c.starts_with("net:")), "{name}");
    }
    let fs = server(&o, "filesystem");
    // No mode: the gateway mounts a host path read-only (docs/import.md).
    assert_eq!(caps(fs), ["fs:read:/srv/a", "fs:read:/srv/b"]);
    assert_eq!(
        sources_of(&fs.report, "fs:read:/srv/a"),
        ["run.volumes[0]", "--param filesystem.paths"]
    );
    let ag = server(&o, "ast-grep");
    assert_eq!(caps(ag), ["fs:read:/srv/code"]);
    assert!(ag.report.capabilities[0]
        .note
        .as_deref()
        .unwrap()
        .contains("/src"));
}

#[test]
fn docker_credential_mounts_are_flagged() {
    let o = docker(
        &["arm-mcp", "cloud-run-mcp", "kubernetes"],
        &[
            ("arm-mcp.workspace_path", "/srv/ws"),
            ("arm-mcp.ssh_private_key_path", "/home/u/.ssh/id_ed25519"),
            ("arm-mcp.ssh_known_hosts_path", "/home/u/.ssh/known_hosts"),
            (
                "cloud-run-mcp.credentials_path",
                "/home/u/.config/gcloud/adc.json",
            ),
            ("kubernetes.config_path", "/home/u/.kube/config"),
        ],
    );
    let arm = server(&o, "arm-mcp");
    // `:ro` in the publisher's spec is a read-only grant.
    assert!(caps(arm).contains(&"fs:read:/home/u/.ssh/id_ed25519".to_owned()));
    // No mode: read-only, as the gateway mounts it.
    assert!(caps(arm).contains(&"fs:read:/srv/ws".to_owned()));
    for name in ["arm-mcp", "cloud-run-mcp", "kubernetes"] {
        assert!(
            server(&o, name)
                .report
                .notes
                .iter()
                .any(|n| n.contains("credential")),
            "{name}"
        );
    }
}

#[test]
fn docker_missing_parameter_is_an_error_naming_it() {
    let files = [fixtures().join("docker/filesystem/server.yaml")];
    let d = run_err(Format::Docker, &files, &Options::default());
    assert_eq!(d[0].code, Code::ImportParamMissing);
    assert!(
        d[0].message.contains("filesystem.paths"),
        "{}",
        d[0].message
    );
    assert!(d[0].location.is_some());
}

#[test]
fn docker_parameter_values_must_be_absolute_paths() {
    let files = [fixtures().join("docker/filesystem/server.yaml")];
    for bad in [
        "relative/dir",
        "~/notes",
        "/srv/../etc",
        "/proc/self",
        "/",
        "/srv/data:/etc",
        "/srv/data:ro",
        "/srv/data,rw",
        "/srv/da\nta",
        "",
    ] {
        let options = Options {
            params: vec![("filesystem.paths".into(), bad.into())],
            ..Options::default()
        };
        let d = run_err(Format::Docker, &files, &options);
        assert_eq!(d[0].code, Code::ImportParamInvalid, "{bad}");
        assert!(d[0].message.contains("filesystem.paths"), "{bad}");
    }
    // A parameter no server uses (a typo) is an error too.
    let options = Options {
        params: vec![
            ("filesystem.paths".into(), "/srv".into()),
            ("filesystem.path".into(), "/srv".into()),
        ],
        ..Options::default()
    };
    assert_eq!(
        run_err(Format::Docker, &files, &options)[0].code,
        Code::ImportParamInvalid
    );
}

#[test]
fn docker_remote_and_poci_entries_go_to_the_report() {
    let o = docker(&["curl", "docker", "ffmpeg", "apify"], &[]);
    for s in &o.servers {
        assert!(s.manifest.is_none(), "{}", s.name());
        assert_eq!(s.report.status, "nothing-to-sandbox");
    }
}

#[test]
fn docker_fixed_paths_named_volumes_user_and_ports() {
    let o = docker(&["fixed-mounts"], &[]);
    let s = server(&o, "fixed-mounts");
    assert!(caps(s).contains(&"fs:read:/srv/data".to_owned()));
    assert!(caps(s).contains(&"fs:read:/var/log/fixed-mounts".to_owned()));
    assert!(caps(s).contains(&"fs:read:/etc/ssl/certs".to_owned()));
    assert!(not_carried(&s.report, "run.volumes[2]").contains("named volume"));
    assert!(not_carried(&s.report, "run.user").contains("user"));
    assert!(not_carried(&s.report, "run.ports").contains("inbound"));
    assert!(caps(s).contains(&"net:connect:\"2606:4700:4700::1111\":853".to_owned()));
    assert!(caps(s).contains(&"net:connect:mixed.example.org:8443".to_owned()));
    assert!(!caps(s).iter().any(|c| c.contains("localhost")));
}

#[test]
fn docker_disable_network_wins_over_allow_hosts() {
    let o = docker(&["both-network"], &[]);
    let s = server(&o, "both-network");
    assert!(caps(s).is_empty());
    assert!(not_carried(&s.report, "run.allowHosts[0]").contains("disableNetwork"));
}

#[test]
fn docker_without_network_data_defaults_to_all_or_none() {
    let o = docker(&["no-network-info"], &[]);
    assert!(caps(server(&o, "no-network-info")).contains(&"net:connect:*".to_owned()));
    let files = [fixtures().join("own/docker/no-network-info/server.yaml")];
    let o = run(
        Format::Docker,
        &files,
        &Options {
            assume_no_network: true,
            ..Options::default()
        },
    );
    assert_eq!(caps(server(&o, "no-network-info")), ["env:inject:NNI_KEY"]);
}

// ------------------------------------------------------------- server.json

#[test]
fn server_json_remotes_only_has_nothing_to_sandbox() {
    let o = run(
        Format::ServerJson,
        &[fixtures().join("server-json/toolhive-github-remote.json")],
        &Options::default(),
    );
    let s = &o.servers[0];
    assert!(s.manifest.is_none());
    assert!(s.report.notes.iter().any(|n| n.contains("only remotes")));
}

#[test]
fn server_json_stacklok_permissions_read_as_toolhive() {
    let o = run(
        Format::ServerJson,
        &[fixtures().join("server-json/toolhive-context7.json")],
        &Options::default(),
    );
    let s = &o.servers[0];
    let mut got = caps(s);
    got.sort();
    assert_eq!(
        got,
        [
            "env:inject:CONTEXT7_API_KEY",
            "net:connect:context7.com:443"
        ]
    );
    assert!(sources_of(&s.report, "net:connect:context7.com:443")[0].starts_with(
        "_meta[\"io.modelcontextprotocol.registry/publisher-provided\"][\"io.github.stacklok\"]"
    ));
}

#[test]
fn server_json_npm_pypi_nuget_and_multiple_packages() {
    let own = |f: &str| fixtures().join(format!("own/server-json/{f}.json"));
    let o = run(
        Format::ServerJson,
        &[
            own("npm"),
            own("pypi"),
            own("nuget-snake-case"),
            own("multi-package"),
        ],
        &Options::default(),
    );
    let npm = server(&o, "io.example/weather-npm");
    assert!(caps(npm).contains(&"env:inject:WEATHER_API_KEY".to_owned()));
    assert!(caps(npm).contains(&"env:read:WEATHER_UNITS".to_owned()));
    assert!(
        caps(npm).contains(&"net:connect:*".to_owned()),
        "no permission data: the default"
    );
    assert!(npm.report.notes.iter().any(|n| n.contains("npm package")));
    let nuget = server(&o, "io.example/sample-nuget");
    assert!(caps(nuget).contains(&"env:inject:SAMPLE_TOKEN".to_owned()));
    assert!(caps(nuget).contains(&"env:read:WEATHER_CHOICES".to_owned()));
    let multi = server(&o, "io.example/filesystem");
    // The oci package has publisher permissions, so it is the one imported.
    assert!(caps(multi).contains(&"env:inject:FS_TOKEN".to_owned()));
    assert!(caps(multi).contains(&"net:connect:*.example.com:443".to_owned()));
    assert!(!caps(multi).contains(&"net:connect:*".to_owned()));
    assert!(not_carried(&multi.report, "packages[0]").contains("alternative"));
    assert!(not_carried(&multi.report, "remotes").contains("hosted"));
    assert!(multi.report.notes.iter().any(|n| n.contains("--mount")));
}

// ----------------------------------------------------------------- errors

#[test]
fn bad_inputs_are_coded_located_errors() {
    let own = |f: &str| fixtures().join(format!("own/{f}"));
    let cases = [
        (
            Format::Docker,
            own("docker/bad-yaml/server.yaml"),
            Code::ImportYaml,
        ),
        (
            Format::Docker,
            own("docker/bad-allow-host/server.yaml"),
            Code::ImportShape,
        ),
        (
            Format::Docker,
            own("docker/bad-template/server.yaml"),
            Code::ImportTemplate,
        ),
        (
            Format::ServerJson,
            own("server-json/bad-shape.json"),
            Code::ImportShape,
        ),
    ];
    for (format, path, code) in cases {
        let d = run_err(format, std::slice::from_ref(&path), &Options::default());
        assert_eq!(d[0].code, code, "{}", path.display());
        assert!(d[0].location.is_some(), "{}", path.display());
    }
    // Wrong top-level shapes and not-JSON.
    let dir = tempdir("shapes");
    for (name, text, format, code) in [
        ("a.json", "[]", Format::Toolhive, Code::ImportShape),
        ("b.json", "{\"servers\": {\"x\": {\"permissions\": {\"network\": {\"outbound\": {\"allow_port\": [70000]}}}}}}", Format::Toolhive, Code::ImportShape),
        ("c.json", "{\"servers\": {\"x\": {\"permissions\": {\"network\": {\"outbound\": {\"allow_host\": \"a.com\"}}}}}}", Format::Toolhive, Code::ImportShape),
        ("d.json", "{\"servers\": {}, \"servers\": {}}", Format::Toolhive, Code::ManifestDuplicateKey),
        ("e.json", "{\"servers\": ", Format::Toolhive, Code::InputJson),
        ("f.yaml", "a: &x [1]\nb: *x\n", Format::Docker, Code::ImportYaml),
        ("g.yaml", "- 1\n", Format::Docker, Code::ImportShape),
        ("h.json", "{\"packages\": []}", Format::ServerJson, Code::ImportShape),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let d = run_err(format, &[p], &Options::default());
        assert_eq!(d[0].code, code, "{name}: {}", d[0].message);
    }
}

#[test]
fn unknown_server_is_an_error() {
    let d = run_err(
        Format::Toolhive,
        &[fixtures().join("toolhive/registry.json")],
        &Options {
            servers: vec!["no-such-server".into()],
            ..Options::default()
        },
    );
    assert_eq!(d[0].code, Code::ImportServerUnknown);
    assert!(d[0].message.contains("no-such-server"));
}

#[test]
fn server_names_must_be_file_names() {
    for bad in [
        "../../escape",
        "..",
        ".hidden",
        "a/../../b",
        "a\\b",
        "a b",
        "import-report",
        "",
    ] {
        assert_eq!(
            import::file_stem(bad).unwrap_err().code,
            Code::ImportServerName,
            "{bad:?}"
        );
    }
    assert_eq!(
        import::file_stem("io.github.stacklok/context7").unwrap(),
        "io.github.stacklok.context7"
    );
}

// --------------------------------------------------------------------- CLI

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("capgate-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn capgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap()
}

#[test]
fn cli_one_server_manifest_on_stdout_report_on_stderr() {
    let out = capgate(&[
        "import",
        "toolhive",
        "fixtures/import/toolhive/registry.json",
        "--server",
        "github",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["name"], "github");
    let report: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(report["servers"][0]["server"], "github");
    // Several servers without --out is a usage error, and nothing goes to stdout.
    let out = capgate(&[
        "import",
        "toolhive",
        "fixtures/import/toolhive/registry.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // A remote server alone: the report, and a coded error.
    let out = capgate(&[
        "import",
        "server-json",
        "fixtures/import/server-json/toolhive-vercel.json",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IMPORT_NOTHING_TO_SANDBOX"));
}

#[test]
fn cli_out_writes_every_manifest_and_the_report() {
    let dir = tempdir("out");
    let d = dir.to_str().unwrap();
    let out = capgate(&[
        "import",
        "server-json",
        "fixtures/import/server-json/toolhive-context7.json",
        "fixtures/import/server-json/toolhive-vercel.json",
        "--out",
        d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("io.github.stacklok.context7.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["name"], "io.github.stacklok/context7");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("import-report.json")).unwrap()).unwrap();
    assert_eq!(r["servers"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["servers"][0]["manifestFile"],
        "io.github.stacklok.context7.json"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "{names:?}: no manifest for the remote, no temp files"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_out_refuses_traversal_and_does_not_follow_symlinks() {
    let dir = tempdir("traversal");
    let d = dir.join("out");
    let out = capgate(&[
        "import",
        "server-json",
        "fixtures/import/own/server-json/bad-name.json",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IMPORT_SERVER_NAME"));
    assert!(!d.exists(), "nothing is written when a name is refused");
    assert!(!dir.join("escape.json").exists());
    // A symlink planted at the target is replaced, not followed.
    std::fs::create_dir_all(&d).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("io.github.stacklok.context7.json")).unwrap();
    std::os::unix::fs::symlink(&victim, d.join("import-report.json")).unwrap();
    let out = capgate(&[
        "import",
        "server-json",
        "fixtures/import/server-json/toolhive-context7.json",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(!std::fs::symlink_metadata(d.join("import-report.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_missing_param_names_the_parameter() {
    let out = capgate(&[
        "import",
        "docker",
        "fixtures/import/docker/filesystem/server.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IMPORT_PARAM_MISSING") && err.contains("filesystem.paths"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = capgate(&[
        "import",
        "docker",
        "fixtures/import/docker/filesystem/server.yaml",
        "--param",
        "filesystem.paths=/srv/data",
    ]);
    assert!(out.status.success());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m["serverCapabilities"],
        serde_json::json!(["fs:read:/srv/data"])
    );
}

/// Every import error code, rendered as a user sees it (also what
/// tests/registry.rs looks for to know each code is exercised).
#[test]
fn error_messages() {
    let mut text = String::new();
    let mut add = |d: &[capgate::diag::Diagnostic]| {
        for d in d {
            text.push_str(&d.render());
        }
    };
    let own = |f: &str| fixtures().join(format!("own/{f}"));
    for (format, path) in [
        (Format::Docker, own("docker/bad-yaml/server.yaml")),
        (Format::Docker, own("docker/bad-allow-host/server.yaml")),
        (Format::Docker, own("docker/bad-template/server.yaml")),
        (
            Format::Docker,
            fixtures().join("docker/filesystem/server.yaml"),
        ),
        (Format::ServerJson, own("server-json/bad-shape.json")),
    ] {
        add(&run_err(format, &[path], &Options::default()));
    }
    add(&run_err(
        Format::Docker,
        &[fixtures().join("docker/filesystem/server.yaml")],
        &Options {
            params: vec![("filesystem.paths".into(), "relative/dir".into())],
            ..Options::default()
        },
    ));
    add(&run_err(
        Format::Toolhive,
        &[fixtures().join("toolhive/registry.json")],
        &Options {
            servers: vec!["no-such-server".into()],
            ..Options::default()
        },
    ));
    add(&[import::file_stem("../../escape").unwrap_err()]);
    let out = capgate(&[
        "import",
        "server-json",
        "fixtures/import/server-json/toolhive-vercel.json",
    ]);
    for line in String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("capgate:"))
    {
        text.push_str(line);
        text.push('\n');
    }
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("import-errors", text);
    });
}

// ------------------------------------------------------- under the real tools

#[path = "enforcement/support.rs"]
#[allow(dead_code)]
mod support;

/// An imported Docker catalog entry (arm-mcp: a workspace without a mode and
/// an SSH key and known_hosts mounted `:ro`) run under the real bwrap: the
/// workspace is readable but not writable (the gateway mounts a host path
/// without a mode read-only), the key readable but not writable, and what lies
/// next to the key (not declared) is not there at all.
#[test]
fn imported_mounts_enforced_by_bwrap() {
    use support::{argv, bwrap_command, compile, launcher, require, s, Checks, TempDir};
    if !require(
        "imported_mounts_enforced_by_bwrap",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("import-bwrap");
    let ws = root.dir("ws", 0o777);
    let keys = root.dir("keys", 0o755);
    // World-writable on the host, so only the read-only bind keeps the
    // sandbox (uid 65534) from writing it.
    let key = root.file("keys/id_ed25519", "private-key\n", 0o666);
    let known = root.file("keys/known_hosts", "host key\n", 0o644);
    let sibling = root.file("keys/id_rsa", "other key, not declared\n", 0o644);
    let options = Options {
        params: vec![
            ("arm-mcp.workspace_path".into(), s(&ws)),
            ("arm-mcp.ssh_private_key_path".into(), s(&key)),
            ("arm-mcp.ssh_known_hosts_path".into(), s(&known)),
        ],
        assume_no_network: true,
        ..Options::default()
    };
    let o = run(
        Format::Docker,
        &[fixtures().join("docker/arm-mcp/server.yaml")],
        &options,
    );
    let manifest = serde_json::to_string(o.servers[0].manifest.as_ref().unwrap()).unwrap();
    let artifact = compile("arm-mcp", &manifest, "bwrap", false, &[]);
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let mut c = bwrap_command(&launch, &argv);
    let script = format!(
        "import json, os\n\
         out = {{}}\n\
         def tryit(name, f):\n\
         \x20   try:\n\
         \x20       f(); out[name] = True\n\
         \x20   except OSError:\n\
         \x20       out[name] = False\n\
         tryit('ws_write', lambda: open({ws:?} + '/from-sandbox', 'w').write('x'))\n\
         tryit('key_read', lambda: open({key:?}).read())\n\
         tryit('key_write', lambda: open({key:?}, 'a').write('x'))\n\
         out['sibling_exists'] = os.path.lexists({sibling:?})\n\
         tryit('keys_dir_write', lambda: open({keys:?} + '/planted', 'w').write('x'))\n\
         print(json.dumps(out))\n",
        ws = s(&ws),
        key = s(&key),
        sibling = s(&sibling),
        keys = s(&keys),
    );
    c.args(["--", "/usr/bin/python3", "-c", &script]);
    let out = support::run(&mut c, std::time::Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let f: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "no result ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut checks = Checks::new();
    checks.eq(
        "the workspace (no mode) is not writable",
        f["ws_write"].as_bool(),
        Some(false),
    );
    checks.eq("the key is readable", f["key_read"].as_bool(), Some(true));
    checks.eq(
        "the key (`:ro`) is not writable",
        f["key_write"].as_bool(),
        Some(false),
    );
    checks.eq(
        "an undeclared file next to the key is absent",
        f["sibling_exists"].as_bool(),
        Some(false),
    );
    checks.finish("imported_mounts_enforced_by_bwrap");
    // The key's directory is not bound: a file written there lands on the
    // sandbox's private /tmp, never on the host; the key is unchanged.
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "private-key\n");
    assert!(
        !keys.join("planted").exists(),
        "the sandbox wrote into the host's key directory"
    );
    assert!(
        !ws.join("from-sandbox").exists(),
        "the sandbox wrote into the read-only workspace"
    );
}

/// The real squid accepts the config compiled from every imported manifest
/// (wildcard hosts, apex plus subdomain pairs, any-host ports, IPv6).
#[test]
fn imported_manifests_parse_under_real_squid() {
    use support::{cmd, compile, config, require, s, TempDir};
    if !require(
        "imported_manifests_parse_under_real_squid",
        &["squid"],
        true,
    ) {
        return;
    }
    let dir = TempDir::new("import-squid");
    let mut outcomes = vec![
        toolhive(&Options::default()),
        run(
            Format::ServerJson,
            &server_json_files(),
            &Options::default(),
        ),
        run(
            Format::Toolhive,
            &[fixtures().join("own/toolhive-edge.json")],
            &Options::default(),
        ),
        docker(
            &[
                "kafka-schema-reg-mcp",
                "fixed-mounts",
                "github-official",
                "duckduckgo",
            ],
            &[],
        ),
    ];
    let mut parsed = 0;
    for o in outcomes.drain(..) {
        for srv in &o.servers {
            let Some(m) = &srv.manifest else { continue };
            let manifest = serde_json::to_string(m).unwrap();
            let artifact = compile(srv.name(), &manifest, "squid", true, &[]);
            let r = s(&dir.path);
            let conf = format!(
                "pid_filename {r}/squid.pid\ncache_log {r}/cache.log\ncoredump_dir {r}\n{}\n",
                config(&artifact)
            );
            let path = dir.join(&format!("{}.conf", srv.name().replace('/', "_")));
            std::fs::write(&path, conf).unwrap();
            let out = support::run(
                &mut cmd("squid", &["-k", "parse", "-f", &s(&path)]),
                std::time::Duration::from_secs(20),
            );
            assert!(
                out.status.success(),
                "squid -k parse rejected the config of {}:\n{}",
                srv.name(),
                String::from_utf8_lossy(&out.stderr)
            );
            parsed += 1;
        }
    }
    assert!(parsed > 60, "{parsed}");
}

/// Truncated and corrupted inputs are coded errors or imports, never a panic.
#[test]
fn truncated_and_corrupted_inputs_never_panic() {
    let mut files: Vec<(Format, PathBuf)> =
        vec![(Format::Toolhive, fixtures().join("toolhive/registry.json"))];
    files.extend(
        docker_files()
            .into_iter()
            .step_by(7)
            .map(|f| (Format::Docker, f)),
    );
    files.extend(
        server_json_files()
            .into_iter()
            .map(|f| (Format::ServerJson, f)),
    );
    for (format, path) in files {
        let bytes = std::fs::read(&path).unwrap();
        let mut variants: Vec<Vec<u8>> = (1..8)
            .map(|k| bytes[..bytes.len() * k / 8].to_vec())
            .collect();
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(97) {
            flipped[i] = b"{[:\"-&*!\n"[i % 9];
        }
        variants.push(flipped);
        for v in variants {
            let result = std::panic::catch_unwind(|| {
                import::import(format, &[("f".to_owned(), v.clone())], &Options::default())
            });
            assert!(result.is_ok(), "{} panicked on a variant", path.display());
        }
    }
}

/// Two servers with one name (in two files), or two names with one file name.
#[test]
fn duplicate_names_and_file_collisions_are_refused() {
    let f = fixtures().join("docker/filesystem/server.yaml");
    let options = Options {
        params: vec![("filesystem.paths".into(), "/srv".into())],
        ..Options::default()
    };
    let d = run_err(Format::Docker, &[f.clone(), f], &options);
    assert_eq!(d[0].code, Code::ImportServerName);
    let dir = tempdir("collide");
    let pkg = r#""packages": [{"registryType": "oci", "identifier": "x/y:1"}]"#;
    std::fs::write(
        dir.join("a.json"),
        format!(r#"{{"name": "io.example/tool", {pkg}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("b.json"),
        format!(r#"{{"name": "io.example.tool", {pkg}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("c.json"),
        format!(r#"{{"name": "io.example/TOOL", {pkg}}}"#),
    )
    .unwrap();
    for pair in [["a.json", "b.json"], ["a.json", "c.json"]] {
        let out_dir = dir.join("out");
        let out = capgate(&[
            "import",
            "server-json",
            dir.join(pair[0]).to_str().unwrap(),
            dir.join(pair[1]).to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(4), "{pair:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("IMPORT_SERVER_NAME"));
        assert!(!out_dir.exists(), "{pair:?}: nothing is written");
    }
    // --out naming a file, not a directory.
    let file = dir.join("a.json");
    let out = capgate(&[
        "import",
        "server-json",
        file.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OUTPUT_UNWRITABLE"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A container-engine socket is never carried over as an fs mount, whether
/// the publisher mounts it or a --param points at one.
#[test]
fn docker_engine_socket_mounts_are_dropped() {
    let o = docker(
        &["engine-socket"],
        &[("engine-socket.workdir", "/srv/work")],
    );
    let s = server(&o, "engine-socket");
    assert_eq!(caps(s), ["fs:read:/srv/work"]);
    use capgate::import::report::dropped_code;
    assert_eq!(
        dropped_code(&s.report, "fs:read:/var/run/docker.sock"),
        Some(Code::CapIpcSocket)
    );
    assert_eq!(
        dropped_code(&s.report, "fs:read:/run/containerd/containerd.sock"),
        Some(Code::CapIpcSocket)
    );
    for sock in [
        "/run/podman/podman.sock",
        "/var/run/docker.sock",
        "/run/user/1000/podman/podman.sock",
    ] {
        let files = [fixtures().join("own/docker/engine-socket/server.yaml")];
        let options = Options {
            params: vec![("engine-socket.workdir".into(), sock.into())],
            ..Options::default()
        };
        let d = run_err(Format::Docker, &files, &options);
        assert_eq!(d[0].code, Code::ImportParamInvalid, "{sock}");
    }
}
