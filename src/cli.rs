//! Command-line interface: argument definitions (clap derive; the `///`
//! comments are the `--help` text) and the commands that print results.
//!
//! Exit codes match the reference tool: 0 ok, 2 usage, 3 unreadable input or
//! invalid JSON, 4 compile error. Nothing is written to stdout on failure.

use std::io::{Read as _, Write as _};
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
  capgate compile fixtures/manifests/github.json --target nftables --pretty
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
  capgate compile fixtures/manifests/github.json --target nftables --pretty
  capgate compile - --target squid --set listen=0.0.0.0:3128 < manifest.json")]
    Compile(CompileArgs),
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
    /// Target to compile for: bwrap, docker, squid, nftables, egress (with --egress-target),
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
    /// Manifest JSON file, or `-` for stdin. Example: fixtures/manifests/github.json
    #[arg(value_name = "MANIFEST|-")]
    pub manifest: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Indent the JSON output with 2 spaces.
    #[arg(long)]
    pub pretty: bool,
    /// Facts the target cannot lower become `unenforceable` entries and notes
    /// instead of an ADAPTER_UNSUPPORTED error (default: strict, fail closed).
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
    let result = if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    };
    result.map_err(|e| {
        Diagnostic::new(
            Code::InputUnreadable,
            format!("failed to read manifest {}: {e}", crate::diag::quote(path)),
        )
    })
}

fn compile(args: &CompileArgs) -> ExitCode {
    let assets = args.target.assets.assets();
    let compiler = match Compiler::new(&assets, args.target.target_name()) {
        Ok(c) => c,
        Err(d) => return report(&d, args.error_format),
    };
    let bytes = match read_input(&args.manifest) {
        Ok(b) => b,
        Err(d) => return report(&[d], args.error_format),
    };
    let name = if args.manifest == "-" { "<stdin>" } else { &args.manifest };
    let settings = Settings {
        permissive: args.permissive,
        set: args.target.set.clone(),
    };
    match compiler.compile(name, &bytes, &settings) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.artifact.to_json(args.pretty).as_bytes());
            ExitCode::from(exit::OK)
        }
        Err(d) => report(&d, args.error_format),
    }
}
