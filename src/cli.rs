//! Command-line interface: argument definitions (clap derive; the `///`
//! comments are the `--help` text) and the commands that print results.
//!
//! Exit codes match the reference tool: 0 ok, 2 usage, 3 unreadable input or
//! invalid JSON, 4 compile error. Nothing is written to stdout on failure.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::assets::Assets;
use crate::compile::{Compiler, Settings};
use crate::diag::{exit, Code, Diagnostic};

/// capgate — compile MCP manifests into sandbox policies.
#[derive(Debug, Parser)]
#[command(name = "capgate", version, about, long_about = None)]
#[command(after_help = "Examples:
  capgate compile fixtures/manifests/github-api.json --target nftables --pretty
  cat manifest.json | capgate compile - --target bwrap
  capgate compile manifest.json --target docker --set network=egress-net
  capgate compile manifest.json --target egress --egress-target squid --permissive")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile a manifest into a sandbox policy (JSON on stdout).
    #[command(after_help = "Examples:
  capgate compile fixtures/manifests/github.json --target bwrap --pretty
  capgate compile fixtures/manifests/github-api.json --target nftables --pretty
  capgate compile - --target squid --set listen=0.0.0.0:3128 < manifest.json")]
    Compile(CompileArgs),
    /// Show why each output element is there and what happened to each capability.
    #[command(after_help = "Examples:
  capgate explain fixtures/manifests/github.json --target squid
  capgate explain fixtures/manifests/github.json --target bwrap --format json
  capgate explain --rule bwrap.cap-drop")]
    Explain(ExplainArgs),
    /// List every target (built-in and from --rules) with its options.
    #[command(after_help = "Examples:
  capgate targets
  capgate targets --rules ./policy/rules --format json")]
    Targets(TargetsArgs),
    /// Write the built-in rules and templates as a starting point for operator targets.
    #[command(after_help = "Examples:
  capgate init --eject ./policy
  capgate compile manifest.json --rules ./policy/rules --templates ./policy/templates --target bwrap")]
    Init(InitArgs),
    /// Compare what two manifests let the server reach; exit 1 if NEW reaches more.
    #[command(after_help = "Examples:
  capgate diff old.json new.json
  capgate diff old.json new.json --target bwrap --target squid
  git show origin/main:mcp/manifest.json > /tmp/base.json && capgate diff /tmp/base.json mcp/manifest.json --format json

Exit codes: 0 NEW reaches nothing OLD could not, 1 it does (each witness is listed),
2/3/4 as compile (usage, unreadable input or invalid JSON, invalid manifest).")]
    Diff(DiffArgs),
    /// Print a JSON Schema (2020-12) of the manifest, for editors and CI checks.
    #[command(after_help = "Examples:
  capgate schema > capgate-manifest.schema.json
  (then in VS Code settings.json: \"json.schemas\": [{\"fileMatch\": [\"*.capgate.json\"], \"url\": \"./capgate-manifest.schema.json\"}])")]
    Schema,
    /// Write capgate manifests from ToolHive, Docker MCP catalog or server.json permission data.
    #[command(after_help = "Examples:
  capgate import toolhive registry.json --server github
  capgate import docker servers/filesystem/server.yaml --param filesystem.paths=/srv/data
  capgate import server-json servers/*.json --out imported/ --assume-no-network")]
    Import(crate::import::cli::ImportArgs),
    /// Check manifests for risky or redundant grants (rules in docs/lint.md); exit 1 on findings at or above --deny.
    #[command(after_help = "Examples:
  capgate lint fixtures/manifests/*.json
  capgate lint manifest.json --format sarif > capgate.sarif
  capgate lint manifest.json --deny warning
  capgate lint --explain fs-credentials")]
    Lint(LintArgs),
    /// Print a shell completion script for capgate.
    #[command(after_help = "Examples:
  capgate completions bash > ~/.local/share/bash-completion/completions/capgate
  capgate completions zsh > \"${fpath[1]}/_capgate\"
  capgate completions fish > ~/.config/fish/completions/capgate.fish")]
    Completions(CompletionsArgs),
    /// Print the capgate(1) man page (roff).
    #[command(after_help = "Examples:
  capgate man > capgate.1 && man -l capgate.1
  capgate man | gzip > /usr/local/share/man/man1/capgate.1.gz")]
    Man,
    /// Compile a manifest and run a stdio MCP server under it (stdio passed through).
    #[command(after_help = "Examples:
  capgate run examples/servers/memory.json -- /usr/bin/node /usr/lib/node_modules/@modelcontextprotocol/server-memory/dist/index.js
  capgate run examples/servers/time.json --verbose -- /opt/mcp/venv/bin/mcp-server-time
  capgate run m.json --target docker --image localhost/mcp-node -- node /app/index.js")]
    Run(crate::run::RunArgs),
    /// Internal: removes a `capgate run --target docker` container once its client is gone.
    #[command(name = "__run-reaper", hide = true)]
    RunReaper {
        #[arg(num_args = 4)]
        args: Vec<String>,
    },
    /// Internal: the first process of a networked `capgate run` sandbox; waits
    /// on fd 3 until its network namespace is wired, then executes the launcher.
    #[command(name = "__run-wait", hide = true)]
    RunWait {
        #[arg(last = true, required = true)]
        argv: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The manifest before the change (file, or `-` for stdin). Example: base.json
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The manifest after the change (file, or `-` for stdin). Example: manifest.json
    #[arg(value_name = "NEW")]
    pub new: String,
    /// Also compare the compiled output for this target (repeatable): lines added and
    /// removed, each with its rule and capabilities. Example: --target bwrap
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Vec<String>,
    #[command(flatten)]
    pub assets: AssetArgs,
    /// Output format; the JSON form is stable (docs/cli.md). Example: --format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub format: OutputFormat,
    /// How errors are printed on stderr. Example: --error-format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub error_format: ErrorFormat,
}

/// Output formats of `capgate lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
}

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Manifest JSON files, or `-` for stdin. Example: fixtures/manifests/github.json
    #[arg(value_name = "MANIFEST|-", required_unless_present = "explain", num_args = 1..)]
    pub manifests: Vec<String>,
    /// Output format. Example: --format sarif
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub format: LintFormat,
    /// Exit 1 when a finding is at or above this level. Example: --deny warning
    #[arg(long, value_enum, default_value = "error", value_name = "LEVEL")]
    pub deny: crate::lint::Level,
    /// Print one rule's documentation instead of linting. Example: --explain net-wildcard-egress
    #[arg(long, value_name = "ID", conflicts_with = "manifests")]
    pub explain: Option<String>,
    /// How errors are printed on stderr. Example: --error-format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub error_format: ErrorFormat,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for. Example: bash
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Manifest JSON file, or `-` for stdin (not needed with --rule). Example: fixtures/manifests/github.json
    #[arg(value_name = "MANIFEST|-", required_unless_present = "rule")]
    pub manifest: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format; the JSON form is stable (docs/cli.md). Example: --format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub format: OutputFormat,
    /// Print one rule's documentation and where it is defined. Example: --rule squid.deny-special
    #[arg(long, value_name = "ID")]
    pub rule: Option<String>,
    /// How errors are printed on stderr. Example: --error-format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub error_format: ErrorFormat,
}

#[derive(Debug, Clone, Args)]
pub struct TargetsArgs {
    #[command(flatten)]
    pub assets: AssetArgs,
    /// Output format. Example: --format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Directory to write `rules/` and `templates/` into. Example: --eject ./policy
    #[arg(long, value_name = "DIR")]
    pub eject: PathBuf,
    /// Overwrite files that already exist. Example: --eject ./policy --force
    #[arg(long)]
    pub force: bool,
}

/// Where targets come from.
#[derive(Debug, Clone, Args)]
pub struct AssetArgs {
    /// Directory of operator rules files (`<target>.toml`) that overlay the built-in ones.
    /// Example: --rules ./policy/rules
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Directory of operator templates (`<target>/<file>.j2`) that overlay the built-in ones.
    /// Example: --templates ./policy/templates
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

impl AssetArgs {
    pub fn assets(&self) -> Assets {
        Assets {
            rules_dir: self.rules.clone(),
            templates_dir: self.templates.clone(),
        }
    }

    /// The assets, after refusing operator directories that hold symlinks
    /// leading outside them or special files (`OPERATOR_PATH_UNSAFE`).
    pub fn checked(&self) -> Result<Assets, Vec<Diagnostic>> {
        let assets = self.assets();
        assets.check_operator_dirs().map_err(|problems| {
            problems
                .into_iter()
                .map(|(path, message)| {
                    Diagnostic::new(Code::OperatorPathUnsafe, message).at(crate::diag::Location {
                        file: path.display().to_string(),
                        line: 1,
                        column: 1,
                    })
                })
                .collect::<Vec<_>>()
        })?;
        Ok(assets)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EgressTarget {
    Squid,
    Nftables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ErrorFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Target to compile for: bwrap, docker, squid, nftables, oci, systemd, kubernetes, srt, egress (with --egress-target),
    /// or an operator target from --rules. Example: --target nftables
    #[arg(long, short = 't', default_value = "bwrap", value_name = "TARGET")]
    pub target: String,
    /// Backend for `--target egress` (the reference tool's spelling). Example: --egress-target nftables
    #[arg(long, value_enum, default_value = "squid", value_name = "BACKEND")]
    pub egress_target: EgressTarget,
    /// Set a target option (see `capgate targets`); repeatable. Example: --set uid=1000
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    #[command(flatten)]
    pub assets: AssetArgs,
}

impl TargetArgs {
    /// The target name after resolving the reference's `egress` alias.
    pub fn target_name(&self) -> &str {
        match (self.target.as_str(), self.egress_target) {
            ("egress", EgressTarget::Squid) => "squid",
            ("egress", EgressTarget::Nftables) => "nftables",
            (t, _) => t,
        }
    }
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got \"{s}\""))
}

#[derive(Debug, Clone, Args)]
pub struct CompileArgs {
    /// Manifest JSON file, or `-` for stdin. With --out: any number of manifests and
    /// directories (their *.json files). Example: fixtures/manifests/github.json
    #[arg(value_name = "MANIFEST|-", required = true, num_args = 1..)]
    pub manifests: Vec<String>,
    /// Batch mode: write one artifact per manifest to DIR/<name>.<target>.json, using
    /// every core; a bad manifest does not stop the others. Example: --out policies/
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Indent the JSON output with 2 spaces. Example: --pretty
    #[arg(long)]
    pub pretty: bool,
    /// Facts the target cannot lower become `unenforceable` entries and notes
    /// instead of an ADAPTER_UNSUPPORTED error (default: strict, fail closed).
    /// Example: --target squid --permissive
    #[arg(long)]
    pub permissive: bool,
    /// How errors are printed on stderr. Example: --error-format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub error_format: ErrorFormat,
}

/// Runs the CLI and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Compile(args) => compile(&args),
        Command::Explain(args) => explain(&args),
        Command::Targets(args) => targets(&args),
        Command::Init(args) => init(&args),
        Command::Diff(args) => diff(&args),
        Command::Schema => schema(),
        Command::Import(args) => crate::import::cli::run(&args),
        Command::Lint(args) => lint(&args),
        Command::Completions(args) => completions(&args),
        Command::Man => man(),
        Command::Run(args) => crate::run::run(&args),
        Command::RunReaper { args } => crate::run::reaper(&args),
        Command::RunWait { argv } => crate::run::supervise::wait_then_exec(&argv),
    }
}

/// Prints diagnostics to stderr and returns the exit code of the first.
pub fn report(diags: &[Diagnostic], format: ErrorFormat) -> ExitCode {
    let mut err = std::io::stderr().lock();
    match format {
        ErrorFormat::Text => {
            for d in diags {
                let _ = err.write_all(d.render().as_bytes());
            }
        }
        ErrorFormat::Json => {
            let list: Vec<_> = diags.iter().map(Diagnostic::to_json).collect();
            let _ = writeln!(err, "{}", serde_json::Value::Array(list));
        }
    }
    ExitCode::from(diags.first().map_or(exit::COMPILE, |d| d.code.exit_code()))
}

/// Reads a manifest file, or stdin for `-`.
pub fn read_input(path: &str) -> Result<Vec<u8>, Diagnostic> {
    // Bounded: an oversized input is refused after limit + 1 bytes.
    let result = if path == "-" {
        crate::manifest::read_bounded(std::io::stdin().lock(), 0)
    } else {
        crate::manifest::read_file_bounded(std::path::Path::new(path))
    };
    result.map_err(|e| {
        Diagnostic::new(
            Code::InputUnreadable,
            format!("failed to read manifest {}: {e}", crate::diag::quote(path)),
        )
    })
}

fn compile(args: &CompileArgs) -> ExitCode {
    let assets = match args.target.assets.checked() {
        Ok(a) => a,
        Err(d) => return report(&d, args.error_format),
    };
    let compiler = match Compiler::new(&assets, args.target.target_name()) {
        Ok(c) => c,
        Err(d) => return report(&d, args.error_format),
    };
    let settings = Settings {
        permissive: args.permissive,
        set: args.target.set.clone(),
    };
    // Options are checked before any manifest is read, in both modes.
    if let Err(d) = crate::compile::resolve_options(&compiler.target, &settings.set) {
        return report(&d, args.error_format);
    }
    if let Some(out) = &args.out {
        return compile_batch(&compiler, args, out, &settings);
    }
    let [manifest] = args.manifests.as_slice() else {
        return report(
            &[Diagnostic::new(
                Code::Usage,
                format!(
                    "{} manifests given; compiling several needs --out DIR",
                    args.manifests.len()
                ),
            )
            .with_help("capgate compile a.json b.json dir/ --target T --out policies/")],
            args.error_format,
        );
    };
    let bytes = match read_input(manifest) {
        Ok(b) => b,
        Err(d) => return report(&[d], args.error_format),
    };
    let name = if manifest == "-" { "<stdin>" } else { manifest };
    match compiler.compile(name, &bytes, &settings) {
        Ok(out) => {
            let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let written = out
                .artifact
                .write_json(&mut stdout, args.pretty)
                .and_then(|()| stdout.flush());
            if let Err(e) = written {
                return report(
                    &[Diagnostic::new(
                        Code::OutputUnwritable,
                        format!("failed to write the artifact to stdout: {e}"),
                    )],
                    args.error_format,
                );
            }
            // The process ends here: freeing a large compile's tens of thousands
            // of allocations one by one would only delay the exit.
            std::mem::forget(out);
            ExitCode::from(exit::OK)
        }
        Err(d) => report(&d, args.error_format),
    }
}

/// `compile --out DIR`: every manifest, every core, a summary at the end.
fn compile_batch(
    compiler: &Compiler,
    args: &CompileArgs,
    out: &std::path::Path,
    settings: &Settings,
) -> ExitCode {
    use std::io::IsTerminal as _;
    if args.manifests.iter().any(|m| m == "-") {
        return report(
            &[Diagnostic::new(
                Code::Usage,
                "`-` (stdin) cannot be used with --out",
            )],
            args.error_format,
        );
    }
    let paths: Vec<PathBuf> = args.manifests.iter().map(PathBuf::from).collect();
    let inputs = match crate::batch::expand_inputs(&paths) {
        Ok(i) => i,
        Err(e) => {
            return report(
                &[Diagnostic::new(
                    Code::InputUnreadable,
                    format!("cannot list the inputs: {e}"),
                )],
                args.error_format,
            )
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        let _ = write!(std::io::stderr(), "\rcapgate: compiled {done}/{total}");
    };
    let progress: Option<&dyn Fn(usize, usize)> = if terminal { Some(&progress) } else { None };
    let result =
        crate::batch::compile_batch(compiler, &inputs, out, settings, args.pretty, progress);
    let mut err = std::io::stderr().lock();
    if terminal {
        let _ = writeln!(err);
    }
    // Written artifacts are listed on stdout when every manifest compiled.
    // After a failure stdout stays empty, as for every failed command: the
    // diagnostics come first on stderr, then what was written, then the summary.
    let failed = result.exit_code() != exit::OK;
    for (_, failure) in result.failures() {
        let _ = err.write_all(failure.render().as_bytes());
    }
    let mut stdout = std::io::stdout().lock();
    for item in &result.items {
        if let Ok(written) = &item.result {
            let _ = if failed {
                writeln!(err, "capgate: batch: wrote {}", written.display())
            } else {
                writeln!(stdout, "{}", written.display())
            };
        }
    }
    let _ = err.write_all(result.summary().as_bytes());
    ExitCode::from(result.exit_code())
}

fn explain(args: &ExplainArgs) -> ExitCode {
    let assets = match args.target.assets.checked() {
        Ok(a) => a,
        Err(d) => return report(&d, args.error_format),
    };
    if let Some(id) = &args.rule {
        return explain_rule(&assets, id, &args.target, args.format);
    }
    let compiler = match Compiler::new(&assets, args.target.target_name()) {
        Ok(c) => c,
        Err(d) => return report(&d, args.error_format),
    };
    let path = args.manifest.as_deref().unwrap_or("-");
    let bytes = match read_input(path) {
        Ok(b) => b,
        Err(d) => return report(&[d], args.error_format),
    };
    let name = if path == "-" { "<stdin>" } else { path };
    // Explain always lowers permissively, so it can show what strict mode would reject.
    let settings = Settings {
        permissive: true,
        set: args.target.set.clone(),
    };
    match compiler.compile(name, &bytes, &settings) {
        Ok(out) => {
            let notes = match &out.artifact {
                crate::artifact::Artifact::Argv(a) => &a.notes,
                crate::artifact::Artifact::Config(c) => &c.notes,
            };
            let e = crate::explain::explain(&compiler.target, name, &out.trace, notes);
            let text = match args.format {
                OutputFormat::Text => e.to_text(),
                OutputFormat::Json => {
                    let mut s = serde_json::to_string_pretty(&e).expect("explanation serialises");
                    s.push('\n');
                    s
                }
            };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::from(exit::OK)
        }
        Err(d) => report(&d, args.error_format),
    }
}

/// Finds a rule by id in the chosen target, or else in every target.
fn explain_rule(assets: &Assets, id: &str, target: &TargetArgs, format: OutputFormat) -> ExitCode {
    let mut names: Vec<String> = vec![target.target_name().to_owned()];
    if let Ok(all) = assets.target_names() {
        names.extend(all.into_iter().filter(|n| n != target.target_name()));
    }
    let mut found = String::new();
    let mut json = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let t = match crate::rules::Target::load(assets, &name) {
            Ok(t) => t,
            Err(d) => {
                errors.extend(d);
                continue;
            }
        };
        if let Some(rule) = t.rule(id) {
            if !found.is_empty() {
                found.push('\n');
            }
            found.push_str(&crate::explain::rule_doc(&t, rule));
            json.push(crate::explain::rule_json(&t, rule));
        }
    }
    if format == OutputFormat::Json && !json.is_empty() {
        found = serde_json::to_string_pretty(&json).expect("serialises") + "\n";
    }
    // A broken rules file may hold the rule, or another rule with the same
    // id: refuse rather than answer from the files that loaded.
    if !errors.is_empty() {
        return report(&errors, ErrorFormat::Text);
    }
    if found.is_empty() {
        return report(
            &[Diagnostic::new(
                Code::OptionInvalid,
                format!("no rule with id {}", crate::diag::quote(id)),
            )
            .with_help("run `capgate explain MANIFEST --target T` to see the rules of a target")],
            ErrorFormat::Text,
        );
    }
    let _ = std::io::stdout().lock().write_all(found.as_bytes());
    ExitCode::from(exit::OK)
}

fn targets(args: &TargetsArgs) -> ExitCode {
    let assets = match args.assets.checked() {
        Ok(a) => a,
        Err(d) => return report(&d, ErrorFormat::Text),
    };
    let names = match assets.target_names() {
        Ok(n) => n,
        Err(e) => {
            return report(
                &[Diagnostic::new(
                    Code::RulesInvalid,
                    format!("cannot list the rules directory: {e}"),
                )],
                ErrorFormat::Text,
            )
        }
    };
    let mut listed = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match Compiler::new(&assets, &name) {
            Ok(c) => listed.push(c.target),
            Err(d) => errors.extend(d),
        }
    }
    let text = match args.format {
        OutputFormat::Json => {
            let list: Vec<_> = listed
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "name": t.name,
                        "description": t.description,
                        "format": t.format.as_str(),
                        "source": t.source,
                        "builtin": t.builtin,
                        "options": t.options.iter().map(|o| serde_json::json!({
                            "name": o.name,
                            "type": o.ty.as_str(),
                            "default": o.default,
                            "doc": o.doc,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let mut s = serde_json::to_string_pretty(&list).expect("serialises");
            s.push('\n');
            s
        }
        OutputFormat::Text => {
            let mut s = String::new();
            for t in &listed {
                let origin = if t.builtin {
                    "built-in".to_owned()
                } else {
                    t.source.clone()
                };
                s.push_str(&format!(
                    "{}  ({} output, {})\n  {}\n",
                    t.name,
                    t.format.as_str(),
                    origin,
                    t.description
                ));
                for o in &t.options {
                    s.push_str(&format!(
                        "  --set {}=<{}>  (default: {})  {}\n",
                        o.name,
                        o.ty.as_str(),
                        o.value_text(&o.default),
                        o.doc
                    ));
                }
                s.push('\n');
            }
            s
        }
    };
    // A failed command prints nothing on stdout: a listing without the broken
    // target would read as complete.
    if !errors.is_empty() {
        return report(&errors, ErrorFormat::Text);
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::from(exit::OK)
}

fn init(args: &InitArgs) -> ExitCode {
    if !args.force {
        let existing: Vec<String> = Assets::embedded_paths()
            .into_iter()
            .map(|p| args.eject.join(p))
            // A dangling symlink exists too: it would be refused below.
            .filter(|p| p.symlink_metadata().is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return report(
                &[Diagnostic::new(
                    Code::OptionInvalid,
                    format!(
                        "{} file(s) already exist, e.g. {}",
                        existing.len(),
                        existing[0]
                    ),
                )
                .with_help("choose an empty directory or pass --force to overwrite")],
                ErrorFormat::Text,
            );
        }
    }
    match Assets::eject(&args.eject) {
        Ok(written) => {
            let mut out = std::io::stdout().lock();
            for p in written {
                let _ = writeln!(out, "wrote {}", p.display());
            }
            ExitCode::from(exit::OK)
        }
        Err(e) => report(
            &[match crate::assets::UnsafePath::of(&e) {
                Some(unsafe_path) => {
                    Diagnostic::new(Code::OperatorPathUnsafe, unsafe_path.to_string())
                }
                None => Diagnostic::new(
                    Code::InputUnreadable,
                    format!("cannot write to {}: {e}", args.eject.display()),
                ),
            }],
            ErrorFormat::Text,
        ),
    }
}

/// `capgate diff`: exit 1 when NEW reaches anything OLD could not.
fn diff(args: &DiffArgs) -> ExitCode {
    if args.old == "-" && args.new == "-" {
        return report(
            &[Diagnostic::new(
                Code::Usage,
                "OLD and NEW cannot both be `-` (stdin)",
            )],
            args.error_format,
        );
    }
    let read = |path: &str| read_input(path).map_err(|d| vec![d]);
    let (old, new) = match (read(&args.old), read(&args.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            let mut errors = o.err().unwrap_or_default();
            errors.extend(n.err().unwrap_or_default());
            return report(&errors, args.error_format);
        }
    };
    let name = |p: &str| {
        if p == "-" {
            "<stdin>".to_owned()
        } else {
            p.to_owned()
        }
    };
    let (old_name, new_name) = (name(&args.old), name(&args.new));
    // Operator directories pass the same symlink checks as for compile (F14).
    let assets = match args.assets.checked() {
        Ok(a) => a,
        Err(d) => return report(&d, args.error_format),
    };
    let result = crate::diff::diff(
        crate::diff::Input {
            name: &old_name,
            bytes: &old,
        },
        crate::diff::Input {
            name: &new_name,
            bytes: &new,
        },
        &args.target,
        &assets,
    );
    match result {
        Ok(r) => {
            let text = match args.format {
                OutputFormat::Text => r.to_text(),
                OutputFormat::Json => {
                    let mut s = serde_json::to_string_pretty(&r).expect("report serialises");
                    s.push('\n');
                    s
                }
            };
            if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
                return report(
                    &[Diagnostic::new(
                        Code::OutputUnwritable,
                        format!("failed to write the diff to stdout: {e}"),
                    )],
                    args.error_format,
                );
            }
            ExitCode::from(if r.widens { 1 } else { exit::OK })
        }
        Err(d) => report(&d, args.error_format),
    }
}

/// `capgate schema`: the manifest's JSON Schema on stdout.
fn schema() -> ExitCode {
    match std::io::stdout()
        .lock()
        .write_all(crate::schema::to_string().as_bytes())
    {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => report(
            &[Diagnostic::new(
                Code::OutputUnwritable,
                format!("failed to write the schema to stdout: {e}"),
            )],
            ErrorFormat::Text,
        ),
    }
}

/// The exit code of `capgate lint` when a finding is at or above `--deny`.
pub const LINT_FINDINGS: u8 = 1;

/// `capgate lint`: every manifest is linted; if any does not compile, its
/// diagnostics are the result (stdout empty, exit 3/4 as `compile`).
fn lint(args: &LintArgs) -> ExitCode {
    use crate::lint;
    if let Some(id) = &args.explain {
        let Some(rule) = lint::rule(id) else {
            return report(
                &[Diagnostic::new(
                    Code::OptionInvalid,
                    format!("no lint rule with id {}", crate::diag::quote(id)),
                )
                .with_help(format!(
                    "lint rules: {}",
                    lint::RULES
                        .iter()
                        .map(|r| r.id)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))],
                args.error_format,
            );
        };
        let text = match args.format {
            LintFormat::Text => lint::explain(rule),
            LintFormat::Json | LintFormat::Sarif => {
                let v = serde_json::json!({
                    "id": rule.id,
                    "level": rule.level.as_str(),
                    "summary": rule.summary,
                    "doc": rule.doc,
                });
                serde_json::to_string_pretty(&v).expect("serialises") + "\n"
            }
        };
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        return ExitCode::from(exit::OK);
    }
    if args.manifests.iter().filter(|m| *m == "-").count() > 1 {
        return report(
            &[Diagnostic::new(
                Code::Usage,
                "`-` (stdin) can be given only once",
            )],
            args.error_format,
        );
    }
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for path in &args.manifests {
        let bytes = match read_input(path) {
            Ok(b) => b,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        let name = if path == "-" { "<stdin>" } else { path };
        match lint::lint(name, &bytes) {
            Ok(r) => reports.push(r),
            Err(d) => errors.extend(d),
        }
    }
    if !errors.is_empty() {
        return report(&errors, args.error_format);
    }
    let text = match args.format {
        LintFormat::Text => lint::to_text(&reports),
        LintFormat::Json => {
            serde_json::to_string_pretty(&lint::to_json(&reports)).expect("serialises") + "\n"
        }
        LintFormat::Sarif => {
            serde_json::to_string_pretty(&lint::sarif::to_sarif(&reports)).expect("serialises")
                + "\n"
        }
    };
    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
        return report(
            &[Diagnostic::new(
                Code::OutputUnwritable,
                format!("failed to write the findings to stdout: {e}"),
            )],
            args.error_format,
        );
    }
    let denied = reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.level >= args.deny);
    ExitCode::from(if denied { LINT_FINDINGS } else { exit::OK })
}

fn completions(args: &CompletionsArgs) -> ExitCode {
    use clap::CommandFactory as _;
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "capgate", &mut out);
    write_stdout(&out, "completion script")
}

fn man() -> ExitCode {
    use clap::CommandFactory as _;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .expect("rendering into memory cannot fail");
    write_stdout(&out, "man page")
}

fn write_stdout(bytes: &[u8], what: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => report(
            &[Diagnostic::new(
                Code::OutputUnwritable,
                format!("failed to write the {what} to stdout: {e}"),
            )],
            ErrorFormat::Text,
        ),
    }
}
