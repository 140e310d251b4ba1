//! `capgate run`: compile a manifest and run a stdio MCP server under it.
//!
//! The run builds one command line and `exec`s it, so capgate leaves no
//! process of its own behind: stdin, stdout and stderr are the client's file
//! descriptors (byte for byte, no copying), and the exit status and signals
//! are the sandbox's own. For bwrap the command line is
//!
//! ```text
//! LAUNCHER... /usr/bin/bwrap ARGV[sandbox] GRANTS... ARGV[rest] [--setenv N V]... -- PROGRAM ARGS
//! ```
//!
//! where LAUNCHER is the artifact's `launcher` (`env -i setpriv --reuid=U ...`
//! when root starts it, `env -i` otherwise), GRANTS are the launcher grants of
//! [`runtime`] placed after the baseline and before the manifest's own binds
//! (so a declared bind always lies on top of them), and the `--setenv` values
//! come from capgate's own environment (the MCP client's `env` block), after
//! `env -i` and after the artifact's `--clearenv`. bwrap's `--die-with-parent`
//! ties the sandbox to the process the client started. For docker the command
//! line is `podman|docker run ARGV IMAGE PROGRAM ARGS`.
//!
//! With declared network, capgate does not exec: it stays the sandbox's
//! parent to provide the network and remove it afterwards ([`supervise`],
//! [`net`]).
//!
//! Everything checked before the exec fails with one clear `capgate: RUN_…`
//! line on stderr and exit 125 (docs/errors.md).

pub mod net;
pub mod runtime;
pub mod suggest;
pub mod supervise;

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::artifact::{ArgvArtifact, Artifact, Egress};
use crate::assets::Assets;
use crate::cli::{read_input, report, ErrorFormat};
use crate::compile::{Compiler, Output, Settings};
use crate::diag::{Code, Diagnostic};
use runtime::Grant;

/// The seccomp profile the docker target expects (profiles/docker/seccomp.json).
const SECCOMP_PROFILE: &str = include_str!("../../profiles/docker/seccomp.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunTarget {
    Bwrap,
    Docker,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Manifest JSON file. Example: examples/servers/memory.json
    #[arg(value_name = "MANIFEST")]
    pub manifest: String,
    /// Sandbox to run in: bwrap, or docker (runs with podman or docker, whichever is installed).
    /// Example: --target docker --image localhost/mcp-node
    #[arg(
        long,
        short = 't',
        value_enum,
        default_value = "bwrap",
        value_name = "TARGET"
    )]
    pub target: RunTarget,
    /// Run even when part of the manifest cannot be enforced or provided (e.g. network when
    /// not root or with --target docker: then none at all); every such part is a warning on stderr.
    #[arg(long)]
    pub permissive: bool,
    /// Set a target option (see `capgate targets`); repeatable. Example: --set path=/usr/bin:/bin
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Host uid[:gid] the sandbox runs as when root starts capgate (default 65534:65534),
    /// e.g. the owner of the data directories. Example: --user 1000:1000
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Write what the run does (artifact, launcher grants, warnings, command line with
    /// environment values redacted, the network) as JSON to FILE before starting; with network,
    /// again at exit with the denied requests as suggested capabilities. Example: --report run.json
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the launcher grants, the compiler's notes and the command line on stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Container image for --target docker. Example: --image localhost/mcp-node:e2e
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The server's command line, after `--`. Example: -- /usr/bin/node server.js
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got \"{s}\""))
}

/// What the run will exec, and what it tells the user about it.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub target: String,
    /// The full command line; `--setenv` values are replaced by `<from NAME>`.
    pub command_line: Vec<String>,
    pub launcher_grants: Vec<Grant>,
    /// Environment names passed into the sandbox, and which were missing.
    pub env_passed: Vec<String>,
    pub env_missing: Vec<String>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub unenforceable: Vec<String>,
    pub sandbox_user: String,
    /// The network the run provides, when the manifest declares some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkInfo>,
    /// Requests the network refused, as the capabilities that would allow
    /// them (written at exit).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<suggest::Denial>,
    /// Distinct denied destinations beyond the first [`suggest::MAX_REPORTED`].
    #[serde(skip_serializing_if = "is_zero")]
    pub denials_not_listed: usize,
    #[serde(skip)]
    argv: Vec<OsString>,
    #[serde(skip)]
    net: Option<net::Network>,
    /// The squid config's inputs and the host addresses it was compiled with.
    #[serde(skip)]
    proxy_conf: Option<(ProxyConf, Vec<String>)>,
    #[serde(skip)]
    egress: Vec<Egress>,
    /// docker: the engine and the container name the reaper removes.
    #[serde(skip)]
    reaper: Option<(PathBuf, String)>,
}

/// What the run's network is (docs/run.md "Network").
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInfo {
    /// The proxy the sandbox's HTTP_PROXY/HTTPS_PROXY/ALL_PROXY name.
    pub proxy: String,
    pub sandbox_address: String,
    /// Declared IP literals the sandbox reaches directly (nftables).
    pub direct: Vec<String>,
    /// The run's directory: squid.conf, the ruleset, squid's logs.
    pub state_dir: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn write_report(plan: &Plan, path: &Path) -> Result<(), Diagnostic> {
    let mut text = serde_json::to_string_pretty(plan).expect("plan serialises");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| {
        Diagnostic::new(
            Code::OutputUnwritable,
            format!("cannot write the report {}: {e}", path.display()),
        )
    })
}

/// Runs `capgate run`: returns only when the sandbox could not be started,
/// or, with a network, when it has ended.
pub fn run(args: &RunArgs) -> ExitCode {
    match plan(args) {
        Ok(plan) => {
            if let Some(path) = &args.report {
                if let Err(d) = write_report(&plan, path) {
                    return fail(d);
                }
            }
            let mut err = std::io::stderr().lock();
            for w in &plan.warnings {
                let _ = writeln!(err, "capgate: warning: {w}");
            }
            if args.verbose {
                for n in &plan.notes {
                    let _ = writeln!(err, "capgate: note: {n}");
                }
                for g in &plan.launcher_grants {
                    let _ = writeln!(err, "capgate: launcher grant: {}", describe_grant(g));
                }
                let _ = writeln!(err, "capgate: sandbox user: {}", plan.sandbox_user);
                let _ = writeln!(err, "capgate: exec: {}", shell_words(&plan.command_line));
            }
            drop(err);
            if plan.net.is_some() {
                return supervise::supervise(plan, args.report.as_deref());
            }
            if let Some((engine, name)) = &plan.reaper {
                if let Err(e) = spawn_reaper(engine, name) {
                    return fail(Diagnostic::new(
                        Code::RunStart,
                        format!("cannot start the container reaper: {e}"),
                    ));
                }
            }
            if let Err(e) = host_duties() {
                return fail(Diagnostic::new(
                    Code::RunStart,
                    format!("cannot isolate the launcher from capgate's own process state: {e}"),
                ));
            }
            let e = std::process::Command::new(&plan.argv[0])
                .args(&plan.argv[1..])
                .exec();
            fail(Diagnostic::new(
                Code::RunStart,
                format!("cannot start {}: {e}", Path::new(&plan.argv[0]).display()),
            ))
        }
        Err(d) => report(&d, ErrorFormat::Text),
    }
}

fn fail(d: Diagnostic) -> ExitCode {
    report(&[d], ErrorFormat::Text)
}

fn describe_grant(g: &Grant) -> String {
    match &g.target {
        Some(t) => format!(
            "symlink {} -> {} ({})",
            g.path.display(),
            t.display(),
            g.why
        ),
        None => format!("read-only {} ({})", g.path.display(), g.why),
    }
}

fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The uid capgate runs as (from /proc, std has no getuid).
fn current_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// `--user UID[:GID]`: decimal, non-zero; a missing GID is the UID.
fn parse_user(text: &str) -> Result<(u32, u32), Diagnostic> {
    let bad = || {
        Diagnostic::new(
            Code::RunUser,
            format!(
                "--user {} is not a non-zero numeric UID[:GID]",
                crate::diag::quote(text)
            ),
        )
    };
    let num = |s: &str| -> Result<u32, Diagnostic> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match s.parse::<u32>() {
            Ok(0) | Err(_) | Ok(u32::MAX) => Err(bad()),
            Ok(v) => Ok(v),
        }
    };
    match text.split_once(':') {
        Some((u, g)) => Ok((num(u)?, num(g)?)),
        None => {
            let u = num(text)?;
            Ok((u, u))
        }
    }
}

fn compile(
    args: &RunArgs,
    target: &str,
    set: Vec<(String, String)>,
) -> Result<Output, Vec<Diagnostic>> {
    compile_with(args, target, set, args.permissive)
}

fn compile_with(
    args: &RunArgs,
    target: &str,
    set: Vec<(String, String)>,
    permissive: bool,
) -> Result<Output, Vec<Diagnostic>> {
    let compiler = Compiler::new(&Assets::default(), target)?;
    let bytes = read_input(&args.manifest).map_err(|d| vec![d])?;
    let settings = Settings { permissive, set };
    compiler.compile(&args.manifest, &bytes, &settings)
}

/// Builds the command line (everything short of the exec).
pub fn plan(args: &RunArgs) -> Result<Plan, Vec<Diagnostic>> {
    runtime::check_downloader(&args.command).map_err(|d| vec![d])?;
    if args.command[0].is_empty() {
        return Err(vec![Diagnostic::new(
            Code::RunCommand,
            "the command is empty",
        )]);
    }
    let root = current_uid() == Some(0);
    let user = match &args.user {
        Some(u) if !root => {
            return Err(vec![Diagnostic::new(
                Code::RunUser,
                format!("--user {u} needs root: capgate runs as a non-root user, and the sandbox is that user"),
            )
            .with_help("run without --user, or start capgate as root")])
        }
        Some(u) => Some(parse_user(u).map_err(|d| vec![d])?),
        None => None,
    };
    match args.target {
        RunTarget::Bwrap => plan_bwrap(args, root, user),
        RunTarget::Docker => plan_docker(args, user),
    }
}

fn option<'a>(set: &'a [(String, String)], name: &str) -> Option<&'a str> {
    set.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn plan_bwrap(
    args: &RunArgs,
    root: bool,
    user: Option<(u32, u32)>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut set = args.set.clone();
    if root {
        if option(&set, "root_launcher").is_some_and(|v| v != "true") {
            return Err(vec![Diagnostic::new(
                Code::RunUser,
                "--set root_launcher=false under root would run the sandbox as host root",
            )
            .with_help(
                "leave root_launcher alone; choose the sandbox's host uid with --user UID[:GID]",
            )]);
        }
        if let Some((u, g)) = user {
            set.push(("launcher_uid".into(), u.to_string()));
            set.push(("launcher_gid".into(), g.to_string()));
        }
    } else {
        set.push(("root_launcher".into(), "false".into()));
    }
    let mut out = compile(args, "bwrap", set.clone())?;
    // Declared network is provided by the run when root starts it: bwrap
    // then keeps the namespace the run prepares (supervise.rs).
    let provide_net = root && !egress_of(&out).is_empty();
    if provide_net {
        set.push(("inherit_netns".into(), "true".into()));
        out = compile(args, "bwrap", set.clone())?;
    }
    let Artifact::Argv(art) = &out.artifact else {
        unreachable!("bwrap is an argv target")
    };
    let mut plan = Plan {
        target: "bwrap".into(),
        ..Plan::default()
    };
    let no_net = (!provide_net).then_some(
        "capgate run provides network only when started as root (it creates a network namespace, a veth, nftables rules and a squid instance; docs/run.md \"Network\")",
    );
    common_checks(args, art, &mut plan, no_net)?;
    let (uid, gid) = if root {
        let u = out.trace.options.get("launcher_uid").map(|v| v.to_string());
        let g = out.trace.options.get("launcher_gid").map(|v| v.to_string());
        (
            u.and_then(|v| v.parse().ok()).unwrap_or(65534),
            g.and_then(|v| v.parse().ok()).unwrap_or(65534),
        )
    } else {
        (
            current_uid().unwrap_or(65534),
            current_gid().unwrap_or(65534),
        )
    };
    plan.sandbox_user = format!("host uid {uid}, gid {gid}");

    // The tools of the launcher chain.
    let bwrap = find_tool("bwrap").ok_or_else(|| {
        vec![Diagnostic::new(
            Code::RunStart,
            format!("bwrap is not installed (not found in {})", tool_dirs()),
        )
        .with_help("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)")]
    })?;
    let launcher = art.launcher.clone().unwrap_or_default();
    for tool in launcher
        .iter()
        .take(1)
        .chain(launcher.iter().filter(|t| t.as_str() == "setpriv"))
    {
        // env -i runs setpriv with the default search path /bin:/usr/bin.
        let found = if tool == "setpriv" {
            ["/bin/setpriv", "/usr/bin/setpriv"]
                .iter()
                .any(|p| Path::new(p).is_file())
        } else {
            find_tool(tool).is_some()
        };
        if !found {
            return Err(vec![Diagnostic::new(
                Code::RunStart,
                format!("the launcher needs `{tool}`, which is not installed"),
            )
            .with_help("install util-linux (setpriv) and coreutils (env)")]);
        }
    }

    // Paths of the manifest: every non-try bind source must exist; writable
    // ones must be writable by the sandbox user.
    preflight_binds(&art.argv, uid, gid, &mut plan)?;
    let writable = writable_bind_sources(&art.argv);
    trusted_dirs_outside_writable(&writable).map_err(|d| vec![d])?;

    // Launcher grants for the program's own runtime.
    let sandbox_path = out
        .trace
        .options
        .get("path")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let exe = runtime::resolve(Path::new(&args.command[0]), &host_path())
    .ok_or_else(|| {
        vec![Diagnostic::new(
            Code::RunCommand,
            format!(
                "command {} not found (looked on PATH; a name with `/` is taken as a path) or not executable",
                Path::new(&args.command[0]).display()
            ),
        )]
    })?;
    let mut finder = runtime::Finder::new(&sandbox_path);
    // What the manifest itself binds needs no grant.
    finder.covered.extend(declared_sources(&art.argv));
    // Each writable source as written and by its real path.
    finder.writable = writable
        .into_iter()
        .flat_map(|w| [std::fs::canonicalize(&w).unwrap_or_else(|_| w.clone()), w])
        .collect();
    finder
        .command(&exe, &args.command[1..])
        .map_err(|d| vec![d])?;
    for g in &finder.grants {
        if g.kind == "ro-bind" && !accessible(&g.path, uid, gid, 4) {
            plan.warnings.push(format!(
                "launcher grant {} is not readable by host uid {uid}: the program will not start; make it readable (e.g. chmod o+rX on it and its parent directories) or use --user",
                g.path.display()
            ));
        }
    }

    // The argv with the grants after the baseline (the sandbox slot).
    let split = sandbox_prefix_len(&out);
    let mut argv: Vec<OsString> = launcher.iter().map(OsString::from).collect();
    // The launcher's first tool by its path (env -i then runs setpriv and
    // bwrap from /bin:/usr/bin, its default search path).
    if let Some(first) = argv.first_mut() {
        *first = tool_path(&first.to_string_lossy()).into_os_string();
    }
    argv.push(bwrap.into_os_string());
    argv.extend(art.argv[..split].iter().map(OsString::from));
    for g in &finder.grants {
        argv.extend(g.bwrap_args());
    }
    argv.extend(art.argv[split..].iter().map(OsString::from));
    let mut shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    // Declared environment, valued from our own environment.
    for name in &art.env_injections {
        match std::env::var_os(name) {
            Some(v) => {
                argv.extend(["--setenv".into(), name.into(), v]);
                shown.extend(["--setenv".into(), name.clone(), format!("<from {name}>")]);
                plan.env_passed.push(name.clone());
            }
            None => {
                plan.warnings.push(format!(
                    "the manifest declares {name} but it is not in capgate's environment: the server starts without it; set it in the MCP client's `env` block"
                ));
                plan.env_missing.push(name.clone());
            }
        }
    }
    // clock:tzdata: the host's zone by name (a bound /etc/localtime is only
    // the zone's data, which names it UTC-like "localtime").
    if tzdata_declared(&out) {
        if let Some(zone) = host_zone() {
            argv.extend(["--setenv".into(), "TZ".into(), zone.clone().into()]);
            shown.extend(["--setenv".into(), "TZ".into(), zone.clone()]);
        }
    }
    if provide_net {
        let proxy = provide_network(args, &art.egress, &mut plan)?;
        for (name, value) in proxy_env(&proxy, &art.egress) {
            argv.extend(["--setenv".into(), name.into(), value.clone().into()]);
            shown.extend(["--setenv".into(), name.into(), value]);
        }
    }
    argv.push("--".into());
    shown.push("--".into());
    argv.push(exe.clone().into_os_string());
    shown.push(exe.to_string_lossy().into_owned());
    argv.extend(args.command[1..].iter().cloned());
    shown.extend(
        args.command[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );

    for f in &finder.unfollowed {
        plan.warnings.push(format!(
            "{} lies in a path the manifest declares writable: its runtime (#! line, venv, package, link target) is not followed, since the server can rewrite it; declare what it needs (fs:read:...)",
            f.display()
        ));
    }
    plan.launcher_grants = finder.grants;
    plan.command_line = shown;
    plan.argv = argv;
    Ok(plan)
}

fn egress_of(out: &Output) -> &[Egress] {
    match &out.artifact {
        Artifact::Argv(a) => &a.egress,
        Artifact::Config(c) => &c.egress,
    }
}

/// The proxy variables the sandbox gets (never declarable in a manifest):
/// both spellings, since tools differ in which they read. Declared IP
/// literals are reached directly (the namespace's ruleset holds them to their
/// declared port), never through the proxy, which runs on the host.
fn proxy_env(proxy: &str, egress: &[Egress]) -> Vec<(&'static str, String)> {
    let mut direct = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    direct.extend(
        egress
            .iter()
            .filter(|e| e.host.parse::<std::net::IpAddr>().is_ok())
            .map(|e| e.host.clone()),
    );
    let no_proxy = direct.join(",");
    vec![
        ("HTTP_PROXY", proxy.to_owned()),
        ("HTTPS_PROXY", proxy.to_owned()),
        ("ALL_PROXY", proxy.to_owned()),
        ("NO_PROXY", no_proxy.clone()),
        ("http_proxy", proxy.to_owned()),
        ("https_proxy", proxy.to_owned()),
        ("all_proxy", proxy.to_owned()),
        ("no_proxy", no_proxy),
    ]
}

/// Allocates the run's network and writes its squid.conf and ruleset,
/// compiled from the same manifest by the squid and nftables targets.
/// Returns the proxy URL.
fn provide_network(
    args: &RunArgs,
    egress: &[Egress],
    plan: &mut Plan,
) -> Result<String, Vec<Diagnostic>> {
    for e in egress {
        if let Ok(ip) = e.host.parse::<std::net::IpAddr>() {
            if let Some(why) = net::refused_literal(ip) {
                return Err(vec![Diagnostic::new(
                    Code::RunNetwork,
                    format!("the manifest declares {}, {why}", e.host),
                )
                .with_help("declare the destination by name or by another address, or run the compiled targets in a network you set up (docs/enforcement.md)")]);
            }
        }
    }
    for tool in ["ip", "nsenter", "nft", "squid"] {
        if find_tool(tool).is_none() {
            return Err(vec![Diagnostic::new(
                Code::RunNetwork,
                format!("the manifest declares network, and `{tool}` is not installed"),
            )
            .with_help("capgate run with network needs iproute2 (ip), util-linux (nsenter), nftables (nft) and squid")]);
        }
    }
    let mut net = net::Network::allocate().map_err(|d| vec![d])?;
    let direct = net::direct_ipv4(egress);
    net.direct = !direct.is_empty();
    let host_ip = net.host_ip.to_string();
    // Both targets enforce their half (names: squid; IP literals: both) and
    // list the other half as unenforceable, which the run covers.
    let proxy_conf = ProxyConf {
        args: args.clone(),
        set: vec![
            ("listen".into(), format!("{host_ip}:{}", net::PROXY_PORT)),
            ("private_instance".into(), "true".into()),
            ("client_ip".into(), net.sandbox_ip.to_string()),
            (
                "instance_dir".into(),
                net.instance_dir().to_string_lossy().into_owned(),
            ),
        ],
    };
    let hosts = host_addresses();
    let squid = proxy_conf.compile(&hosts)?;
    let nft = compile_with(
        args,
        "nftables",
        vec![
            ("proxy_ip".into(), host_ip.clone()),
            ("proxy_port".into(), net::PROXY_PORT.to_string()),
            ("udp".into(), "true".into()),
        ],
        true,
    )?;
    let config = |o: &Output| match &o.artifact {
        Artifact::Config(c) => c.config.clone(),
        Artifact::Argv(_) => unreachable!("squid and nftables are config targets"),
    };
    net.write_configs(&squid, &config(&nft))
        .map_err(|d| vec![d])?;
    for e in egress {
        if e.host.contains(':') {
            plan.warnings.push(format!(
                "{} is reachable through the proxy only: the run's link to the host is IPv4",
                e.host
            ));
        }
    }
    let local = net::local_addresses();
    if !net::forwarding()
        && direct
            .iter()
            .any(|ip| !local.contains(&std::net::IpAddr::V4(*ip)))
    {
        plan.warnings.push(
            "declared IP addresses that are not this host's own need IPv4 forwarding (sysctl net.ipv4.ip_forward=1), which capgate does not change: direct connections to them will time out".into(),
        );
    }
    let proxy = net.proxy_url();
    plan.network = Some(NetworkInfo {
        proxy: proxy.clone(),
        sandbox_address: net.sandbox_ip.to_string(),
        direct: direct.iter().map(ToString::to_string).collect(),
        state_dir: net.dir.to_string_lossy().into_owned(),
    });
    plan.egress = egress.to_vec();
    plan.net = Some(net);
    plan.proxy_conf = Some((proxy_conf, hosts));
    Ok(proxy)
}

/// What the run's squid.conf is compiled from, so it can be compiled again
/// when the host's addresses change during the run.
#[derive(Debug)]
pub struct ProxyConf {
    args: RunArgs,
    set: Vec<(String, String)>,
}

impl ProxyConf {
    /// The squid target's config with these host addresses denied.
    pub fn compile(&self, hosts: &[String]) -> Result<String, Vec<Diagnostic>> {
        let mut set = self.set.clone();
        set.push(("host_addresses".into(), hosts.join(",")));
        match compile_with(&self.args, "squid", set, true)?.artifact {
            Artifact::Config(c) => Ok(c.config),
            Artifact::Argv(_) => unreachable!("squid is a config target"),
        }
    }
}

/// The host's own addresses and local prefixes the proxy must not reach,
/// declared literals among them (those are reached directly, on their
/// declared port only: `NO_PROXY` names them), special ones left out (denied
/// anyway).
pub fn host_addresses() -> Vec<String> {
    net::local_prefixes()
        .into_iter()
        .filter(|p| {
            let addr = p.split('/').next().unwrap_or_default();
            addr.parse()
                .is_ok_and(|ip: std::net::IpAddr| !crate::ir::is_special(ip))
        })
        .collect()
}

/// Notes, network and unenforceable parts: the same for every target.
/// `no_net` says why the run cannot provide declared network.
fn common_checks(
    args: &RunArgs,
    art: &ArgvArtifact,
    plan: &mut Plan,
    no_net: Option<&str>,
) -> Result<(), Vec<Diagnostic>> {
    plan.notes = art.notes.clone();
    if let (Some(why), false) = (no_net, art.egress.is_empty()) {
        let hosts: Vec<String> = art
            .egress
            .iter()
            .map(|e| match e.port {
                Some(p) => format!("{}:{p}", e.host),
                None => e.host.clone(),
            })
            .collect();
        if !args.permissive {
            return Err(vec![Diagnostic::new(
                Code::RunNetwork,
                format!("the manifest declares network ({}): {why}", hosts.join(", ")),
            )
            .with_help("start capgate run as root with --target bwrap, or pass --permissive to run the server with no network at all")]);
        }
        plan.warnings.push(format!(
            "--permissive: the manifest declares network ({}), which this run does not provide ({why}): the server runs with no network",
            hosts.join(", ")
        ));
    }
    for u in &art.unenforceable {
        let caps: Vec<String> = u
            .capabilities
            .iter()
            .map(|c| c.capability.clone())
            .collect();
        let line = format!("{} ({})", caps.join(", "), u.reason);
        plan.warnings
            .push(format!("--permissive: not enforced by this run: {line}"));
        plan.unenforceable.push(line);
    }
    Ok(())
}

fn current_gid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Gid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Where host tools are looked up by default: the launcher chain (env,
/// setpriv, bwrap), the network tools and the container engine run outside
/// the sandbox, as the caller, so they never come from the caller's PATH,
/// where a directory the manifest declares writable (`~/.local/bin`) would let
/// the server plant a tool that the next run starts unconfined.
/// `CAPGATE_TOOL_PATH` replaces the list; either way a manifest that binds
/// one of them writable is refused ([`trusted_dirs_outside_writable`]).
pub const TOOL_DIRS: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn tool_dirs() -> String {
    std::env::var("CAPGATE_TOOL_PATH").unwrap_or_else(|_| TOOL_DIRS.to_owned())
}

pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    runtime::resolve(Path::new(name), &tool_dirs())
}

/// Host paths that capgate runs as the caller, outside the sandbox: the tool
/// directories and the directory of capgate's own executable (re-run for the
/// supervisor and the reaper). A writable bind that is, holds or lies in one
/// is refused, whatever tools it holds now: the server could plant one (or
/// replace capgate) that this run, a later one, or the host's root runs. By
/// real path, so a link into or out of them counts.
fn trusted_dirs_outside_writable(writable: &[PathBuf]) -> Result<(), Diagnostic> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut trusted: Vec<PathBuf> = tool_dirs()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| real(Path::new(d)))
        .collect();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| real(&e).parent().map(Path::to_path_buf))
    {
        trusted.push(dir);
    }
    for w in writable {
        let w_real = real(w);
        if let Some(t) = trusted
            .iter()
            .find(|t| t.starts_with(&w_real) || w_real.starts_with(t))
        {
            return Err(Diagnostic::new(
                Code::RunStart,
                format!(
                    "the manifest declares {} writable, which overlaps {}, where capgate run takes the programs it runs outside the sandbox (tools, or capgate itself): the server could plant one",
                    w.display(),
                    t.display()
                ),
            )
            .with_help("declare writable only the directories the server writes, or install capgate and the tools where the manifest does not reach (CAPGATE_TOOL_PATH)"));
        }
    }
    Ok(())
}

/// Sources of the writable binds of a bwrap argv.
fn writable_bind_sources(argv: &[String]) -> Vec<PathBuf> {
    argv.windows(3)
        .filter(|w| matches!(w[0].as_str(), "--bind" | "--bind-try"))
        .map(|w| PathBuf::from(&w[1]))
        .collect()
}

/// Sources of the writable bind mounts of a docker argv (`--mount
/// type=bind,source=...` without `readonly`).
fn writable_mount_sources(argv: &[String]) -> Vec<PathBuf> {
    argv.windows(2)
        .filter(|w| w[0] == "--mount")
        .filter_map(|w| {
            let fields: Vec<&str> = w[1].split(',').collect();
            let bind = fields.contains(&"type=bind");
            let readonly = fields
                .iter()
                .any(|f| *f == "readonly" || f.starts_with("readonly="));
            let source = fields.iter().find_map(|f| f.strip_prefix("source="))?;
            (bind && !readonly).then(|| PathBuf::from(source))
        })
        .collect()
}

/// A host tool's path for spawning it; a missing one is named in
/// [`TOOL_DIRS`]'s first directory, so that spawning fails instead of
/// searching PATH.
pub(crate) fn tool_path(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| Path::new("/usr/bin").join(name))
}

fn host_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

/// The number of leading argv elements that come from the `sandbox` slot
/// (namespaces, identity, baseline mounts): the launcher grants go after them.
fn sandbox_prefix_len(out: &Output) -> usize {
    let slot = |owner: &Option<usize>| owner.map(|i| out.trace.lowered.fragments[i].slot.as_str());
    out.trace
        .elements
        .iter()
        .filter(|(_, o)| slot(o) != Some(crate::artifact::LAUNCHER_SLOT))
        .take_while(|(_, o)| slot(o) == Some("sandbox"))
        .count()
}

/// Whether the manifest's `clock:tzdata` was lowered (the clock slot binds /etc/localtime).
fn tzdata_declared(out: &Output) -> bool {
    out.trace.elements.iter().any(|(e, o)| {
        e == "/etc/localtime" && o.is_some_and(|i| out.trace.lowered.fragments[i].slot == "clock")
    })
}

/// The host's zone name: /etc/timezone, else the target of /etc/localtime
/// below a `zoneinfo/` directory. A zone name is a relative path of letters,
/// digits, `_`, `-`, `+` and `/`.
fn host_zone() -> Option<String> {
    let from_file = std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|s| s.trim().to_owned());
    let from_link = || {
        let t = std::fs::read_link("/etc/localtime").ok()?;
        let t = t.to_string_lossy().into_owned();
        t.split_once("zoneinfo/").map(|(_, z)| z.to_owned())
    };
    let valid = |z: &String| {
        !z.is_empty()
            && !z.starts_with('/')
            && !z.contains("..")
            && z.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-+/".contains(&b))
    };
    // The link is what glibc reads; /etc/timezone can be stale.
    from_link().filter(valid).or(from_file.filter(valid))
}

/// Sources of the manifest's binds (`--bind`, `--ro-bind`, `--ro-bind-try`, ...).
fn declared_sources(argv: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        if matches!(
            argv[i].as_str(),
            "--bind"
                | "--ro-bind"
                | "--bind-try"
                | "--ro-bind-try"
                | "--dev-bind"
                | "--dev-bind-try"
        ) && i + 2 < argv.len()
        {
            out.push(PathBuf::from(&argv[i + 1]));
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Missing bind sources are errors; writable grants the sandbox user cannot
/// write and read grants it cannot read are warnings naming the fix.
fn preflight_binds(
    argv: &[String],
    uid: u32,
    gid: u32,
    plan: &mut Plan,
) -> Result<(), Vec<Diagnostic>> {
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        if !matches!(flag, "--bind" | "--ro-bind") || i + 2 >= argv.len() {
            i += 1;
            continue;
        }
        let src = Path::new(&argv[i + 1]);
        let write = flag == "--bind";
        match std::fs::metadata(src) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(vec![Diagnostic::new(
                    Code::RunBindSource,
                    format!(
                        "the manifest grants {} but it does not exist on the host",
                        src.display()
                    ),
                )
                .with_help(format!(
                    "create it ({}), or remove the grant from the manifest",
                    if write {
                        format!("mkdir -p {0} && chown {uid}:{gid} {0}", src.display())
                    } else {
                        format!("mkdir -p {}", src.display())
                    }
                ))]);
            }
            Err(_) | Ok(_) => {}
        }
        let meta = std::fs::metadata(src).ok();
        let dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let want = if write { 2 } else { 4 } | if dir { 1 } else { 0 };
        if !accessible(src, uid, gid, want) {
            let (ou, og) = meta.as_ref().map_or((0, 0), |m| (m.uid(), m.gid()));
            let fix = if write {
                if ou != 0 {
                    format!(
                        "chown -R {uid}:{gid} {0}, or run with --user {ou}:{og} (its owner)",
                        src.display()
                    )
                } else {
                    format!("chown -R {uid}:{gid} {}", src.display())
                }
            } else {
                format!(
                    "chmod o+rX {} and its parent directories, or use --user",
                    src.display()
                )
            };
            plan.warnings.push(format!(
                "{} grant {} is not {} by the sandbox's host uid {uid} (owner {ou}:{og}); fix: {fix}",
                if write { "writable" } else { "read-only" },
                src.display(),
                if write { "writable" } else { "readable" },
            ));
        }
        i += 3;
    }
    Ok(())
}

/// Whether host uid:gid (no supplementary groups) may open `p` for `want`
/// (rwx bits: 4 read, 2 write, 1 search/exec), parents searched.
fn accessible(p: &Path, uid: u32, gid: u32, want: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let bits = |m: &std::fs::Metadata| -> u32 {
        let mode = m.mode();
        if m.uid() == uid {
            (mode >> 6) & 7
        } else if m.gid() == gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        }
    };
    let mut dir = p.parent();
    while let Some(d) = dir {
        match std::fs::metadata(d) {
            Ok(m) if bits(&m) & 1 != 0 => {}
            _ => return false,
        }
        dir = d.parent();
    }
    std::fs::metadata(p).is_ok_and(|m| bits(&m) & want == want)
}

fn plan_docker(args: &RunArgs, user: Option<(u32, u32)>) -> Result<Plan, Vec<Diagnostic>> {
    let Some(image) = &args.image else {
        return Err(vec![Diagnostic::new(
            Code::Usage,
            "--target docker needs --image IMAGE (the image that holds the server)",
        )]);
    };
    let (engine, engine_path) = ["podman", "docker"]
        .iter()
        .find_map(|e| find_tool(e).map(|p| (*e, p)))
        .ok_or_else(|| {
            vec![Diagnostic::new(
                Code::RunStart,
                format!(
                    "neither podman nor docker is installed (not found in {})",
                    tool_dirs()
                ),
            )]
        })?;
    let mut set = args.set.clone();
    if option(&set, "engine").is_none() {
        set.push(("engine".into(), engine.into()));
    }
    if option(&set, "seccomp_profile").is_none() {
        let p = seccomp_profile_path().map_err(|d| vec![d])?;
        set.push(("seccomp_profile".into(), p.to_string_lossy().into_owned()));
    }
    if let Some((u, g)) = user {
        set.push(("user".into(), format!("{u}:{g}")));
    }
    // --permissive with net declared: no network at all (issue 13), unless chosen.
    if args.permissive && option(&set, "network").is_none() {
        set.push(("network".into(), "none".into()));
    }
    let out = compile(args, "docker", set)?;
    let Artifact::Argv(art) = &out.artifact else {
        unreachable!("docker is an argv target")
    };
    let mut plan = Plan {
        target: format!("docker ({engine})"),
        ..Plan::default()
    };
    common_checks(
        args,
        art,
        &mut plan,
        Some("capgate run --target docker does not provide network yet; --target bwrap does, started as root"),
    )?;
    trusted_dirs_outside_writable(&writable_mount_sources(&art.argv)).map_err(|d| vec![d])?;
    let user = out
        .trace
        .options
        .get("user")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "65534:65534".into());
    let (uid, gid) = parse_user(&user).unwrap_or((65534, 65534));
    plan.sandbox_user = format!("host uid {uid}, gid {gid} ({engine} --user {user})");
    // Writable mounts: the engine's --user is a real host uid.
    for m in art.argv.iter().filter(|a| a.starts_with("type=bind,")) {
        let src = m
            .split(',')
            .find_map(|kv| kv.strip_prefix("source="))
            .unwrap_or_default();
        let ro = m.split(',').any(|kv| kv == "readonly");
        let p = Path::new(src);
        if !p.exists() {
            if ro && art.argv.iter().any(|a| a.contains("bind-try")) {
                continue;
            }
            // Baseline clock mounts may be absent on minimal hosts.
            if src.starts_with("/etc/localtime") || src.starts_with("/usr/share/zoneinfo") {
                continue;
            }
            return Err(vec![Diagnostic::new(
                Code::RunBindSource,
                format!("the manifest grants {src} but it does not exist on the host"),
            )
            .with_help("create the path, or remove the grant from the manifest")]);
        }
        let dir = p.is_dir();
        let want = if ro { 4 } else { 2 } | if dir { 1 } else { 0 };
        if !accessible(p, uid, gid, want) {
            plan.warnings.push(format!(
                "{} mount {src} is not {} by the container's host uid {uid}; fix: chown -R {uid}:{gid} {src}, or --user OWNER_UID:OWNER_GID",
                if ro { "read-only" } else { "writable" },
                if ro { "readable" } else { "writable" },
            ));
        }
    }
    for name in &art.env_injections {
        if std::env::var_os(name).is_some() {
            plan.env_passed.push(name.clone());
        } else {
            plan.warnings.push(format!(
                "the manifest declares {name} but it is not in capgate's environment: the server starts without it; set it in the MCP client's `env` block"
            ));
            plan.env_missing.push(name.clone());
        }
    }
    let name = format!("capgate-run-{}-{}", std::process::id(), nonce());
    let mut argv: Vec<OsString> = vec![engine_path.clone().into_os_string(), "run".into()];
    // No signal proxy: a signal to the client ends the client, and the
    // reaper removes the container. (Proxied, SIGTERM would reach the server
    // as pid 1 of the container, which ignores it unless it set a handler.)
    argv.extend([
        "--name".into(),
        OsString::from(&name),
        "--sig-proxy=false".into(),
    ]);
    argv.extend(art.argv.iter().map(OsString::from));
    argv.push(image.into());
    argv.extend(args.command.iter().cloned());
    plan.command_line = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    plan.argv = argv;
    plan.reaper = Some((engine_path, name));
    Ok(plan)
}

/// A few random bytes from the kernel, hex: container names never repeat.
fn nonce() -> String {
    use std::io::Read as _;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Starts the container reaper for `--target docker`: a detached process
/// (its own process group, stdio on /dev/null) that waits until `pid` (this
/// process, about to become the engine's client) is gone, then removes the
/// container. The engine keeps a container running when its client is
/// SIGKILLed; `--rm` covers every other ending.
fn spawn_reaper(engine: &Path, name: &str) -> std::io::Result<()> {
    let pid = std::process::id();
    let start = net::start_time(pid).unwrap_or_default();
    std::process::Command::new(std::env::current_exe()?)
        .arg("__run-reaper")
        .arg(pid.to_string())
        .arg(start)
        .arg(engine)
        .arg(name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map(|_| ())
}

/// The reaper's body (`capgate __run-reaper PID START ENGINE NAME`).
pub fn reaper(args: &[String]) -> ExitCode {
    let [pid, start, engine, name] = args else {
        return ExitCode::from(crate::diag::exit::USAGE);
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return ExitCode::from(crate::diag::exit::USAGE);
    };
    if !name.starts_with("capgate-run-") {
        return ExitCode::from(crate::diag::exit::USAGE);
    }
    while net::start_time(pid).as_deref() == Some(start.as_str()) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let podman = Path::new(engine).file_name().is_some_and(|n| n == "podman");
    let rm: &[&str] = if podman {
        &["rm", "--force", "--time", "0", "--ignore"]
    } else {
        &["rm", "--force"]
    };
    let _ = std::process::Command::new(engine)
        .args(rm)
        .arg(name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    ExitCode::from(crate::diag::exit::OK)
}

/// The docker target's seccomp profile: /etc/capgate/docker-seccomp.json when
/// installed, else capgate's built-in copy written once per content into a
/// directory only this uid owns (reused by every run): root's runs directory
/// `/run/capgate`, or for another user `$XDG_RUNTIME_DIR/capgate`, else
/// `$TMPDIR/capgate-<uid>`. Root's copy stays out of `/tmp`: a manifest that
/// declares `/tmp` writable (a browser's) would hold the profile, and the
/// compile refuses that (`OPTION_IN_WRITABLE`).
fn seccomp_profile_path() -> Result<PathBuf, Diagnostic> {
    use sha2::Digest as _;
    let installed = Path::new("/etc/capgate/docker-seccomp.json");
    if installed.is_file() {
        return Ok(installed.to_path_buf());
    }
    let uid = current_uid().unwrap_or(0);
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute());
    let dir = match (uid, runtime_dir) {
        (0, _) => PathBuf::from(net::RUN_ROOT),
        (_, Some(runtime)) => runtime.join("capgate"),
        (_, None) => std::env::temp_dir().join(format!("capgate-{uid}")),
    };
    let err = |e: std::io::Error| {
        Diagnostic::new(
            Code::RunStart,
            format!(
                "cannot write the seccomp profile below {}: {e}",
                dir.display()
            ),
        )
    };
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0 => {}
        Ok(_) => {
            return Err(err(std::io::Error::other(
                "exists but is not a directory owned by this user and writable only by it",
            )))
        }
        Err(_) => {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(err)?;
        }
    }
    let hash = sha2::Sha256::digest(SECCOMP_PROFILE.as_bytes());
    let name: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("docker-seccomp-{name}.json"));
    // Reused only as this uid's own file that no one else can write, with the
    // same content; written with mode 0644 whatever the umask (root's directory
    // is searchable by every user).
    let reusable = std::fs::symlink_metadata(&path)
        .is_ok_and(|m| m.is_file() && m.uid() == uid && m.mode() & 0o022 == 0)
        && std::fs::read(&path).ok().as_deref() == Some(SECCOMP_PROFILE.as_bytes());
    if !reusable {
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = dir.join(format!(".docker-seccomp-{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| f.write_all(SECCOMP_PROFILE.as_bytes()))
            .map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
    }
    // The option takes a normalised path; TMPDIR may hold `//` or `.`.
    std::fs::canonicalize(&path).map_err(err)
}

/// The host duties of docs/security.md ("What the host must do", item 8)
/// that no argv tool can do, done by capgate itself just before it executes
/// the launcher (capgate runs no code after that exec): every fd the MCP
/// client left open above stderr is closed at exec, so the sandbox cannot use
/// it (V1), and capgate joins a new, empty session keyring, so the sandbox
/// cannot read the client's keys (V2).
fn host_duties() -> std::io::Result<()> {
    // SAFETY: close_range only sets FD_CLOEXEC on descriptors; no memory is touched.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if r != 0 {
        // Kernels before 5.11: mark each open descriptor by hand.
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: F_SETFD on a descriptor number; a closed one just fails with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a NULL name asks the kernel for a new anonymous session keyring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // Without keyrings in the kernel there is no keyring to inherit.
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parsing() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 1000));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        for bad in [
            "0",
            "0:0",
            "1000:0",
            "00",
            "+1",
            "0x10",
            "root",
            "",
            ":",
            "1:",
            "-1",
            "4294967295",
        ] {
            assert!(parse_user(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn shell_words_quote() {
        assert_eq!(
            shell_words(&["a".into(), "b c".into(), "".into()]),
            "a 'b c' ''"
        );
    }
}
