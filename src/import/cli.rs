//! The `capgate import` subcommand: arguments and output.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{Format, Options, Outcome};
use crate::cli::{read_input, report, ErrorFormat};
use crate::diag::{exit, Code, Diagnostic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// ToolHive's registry.json (`servers.<name>`).
    Toolhive,
    /// A Docker MCP catalog server.yaml.
    Docker,
    /// An MCP registry server.json.
    ServerJson,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Input format. Example: toolhive
    #[arg(value_enum, value_name = "FORMAT")]
    pub format: ImportFormat,
    /// Input files (registry.json, server.yaml, server.json). Example: servers/filesystem/server.yaml
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<String>,
    /// Import only this server (repeatable). Example: --server github
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// A value for a volume template parameter; repeat a name for a list.
    /// Example: --param filesystem.paths=/srv/data
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Write DIR/<server>.json for each server and DIR/import-report.json.
    /// Example: --out imported/
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the publisher says nothing about the network, grant no network
    /// instead of the publisher runtime's default (net:connect:*).
    #[arg(long)]
    pub assume_no_network: bool,
    /// How errors are printed on stderr. Example: --error-format json
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub error_format: ErrorFormat,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got \"{s}\""))
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("JSON serialises");
    s.push('\n');
    s
}

pub fn run(args: &ImportArgs) -> ExitCode {
    let format = match args.format {
        ImportFormat::Toolhive => Format::Toolhive,
        ImportFormat::Docker => Format::Docker,
        ImportFormat::ServerJson => Format::ServerJson,
    };
    let mut inputs = Vec::new();
    for f in &args.files {
        if f == "-" {
            return report(
                &[Diagnostic::new(
                    Code::Usage,
                    "import reads files, not stdin (`-`)",
                )],
                args.error_format,
            );
        }
        match read_input(f) {
            Ok(b) => inputs.push((f.clone(), b)),
            Err(d) => return report(&[d], args.error_format),
        }
    }
    let options = Options {
        assume_no_network: args.assume_no_network,
        params: args.params.clone(),
        servers: args.servers.clone(),
    };
    let outcome = match super::import(format, &inputs, &options) {
        Ok(o) => o,
        Err(d) => return report(&d, args.error_format),
    };
    match &args.out {
        Some(dir) => write_out(dir, outcome, args.error_format),
        None => to_stdout(outcome, args.error_format),
    }
}

fn to_stdout(outcome: Outcome, error_format: ErrorFormat) -> ExitCode {
    let [server] = outcome.servers.as_slice() else {
        return report(
            &[Diagnostic::new(
                Code::Usage,
                format!(
                    "{} servers imported; without --out exactly one is printed",
                    outcome.servers.len()
                ),
            )
            .with_help("pick one with --server NAME, or write them all with --out DIR")],
            error_format,
        );
    };
    let rep = pretty(&outcome.report());
    let _ = std::io::stderr().lock().write_all(rep.as_bytes());
    let Some(manifest) = &server.manifest else {
        return report(
            &[Diagnostic::new(
                Code::ImportNothingToSandbox,
                format!(
                    "server {}: {}",
                    crate::diag::quote(server.name()),
                    server.report.notes.join("; ")
                ),
            )],
            error_format,
        );
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(pretty(manifest).as_bytes())
        .and_then(|()| out.flush())
    {
        return report(
            &[Diagnostic::new(
                Code::OutputUnwritable,
                format!("failed to write the manifest to stdout: {e}"),
            )],
            error_format,
        );
    }
    ExitCode::from(exit::OK)
}

fn write_out(dir: &std::path::Path, mut outcome: Outcome, error_format: ErrorFormat) -> ExitCode {
    // Every name is checked before anything is written.
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut taken = std::collections::BTreeMap::new();
    for s in &mut outcome.servers {
        let Some(m) = &s.manifest else { continue };
        match super::file_stem(s.name()) {
            Ok(stem) => {
                let file = format!("{stem}.json");
                if let Some(other) = taken.insert(file.to_ascii_lowercase(), s.name().to_owned()) {
                    errors.push(Diagnostic::new(
                        Code::ImportServerName,
                        format!(
                            "servers {} and {} would both be written to {file}",
                            crate::diag::quote(&other),
                            crate::diag::quote(s.name())
                        ),
                    ));
                }
                s.report.manifest_file = Some(file.clone());
                files.push((file, pretty(m)));
            }
            Err(d) => errors.push(d),
        }
    }
    if !errors.is_empty() {
        return report(&errors, error_format);
    }
    files.push(("import-report.json".to_owned(), pretty(&outcome.report())));
    let fail = |e: std::io::Error, what: &str| {
        report(
            &[Diagnostic::new(
                Code::OutputUnwritable,
                format!("cannot write {what} in {}: {e}", dir.display()),
            )],
            error_format,
        )
    };
    if let Err(e) = super::write::prepare_dir(dir) {
        return fail(e, "the output directory");
    }
    let mut stdout = std::io::stdout().lock();
    for (name, text) in &files {
        match super::write::write_file(dir, name, text.as_bytes()) {
            Ok(path) => {
                let _ = writeln!(stdout, "{}", path.display());
            }
            Err(e) => return fail(e, name),
        }
    }
    let imported = outcome
        .servers
        .iter()
        .filter(|s| s.manifest.is_some())
        .count();
    let _ = writeln!(
        std::io::stderr(),
        "capgate: imported {imported} of {} servers ({} with nothing to sandbox); see {}",
        outcome.servers.len(),
        outcome.servers.len() - imported,
        dir.join("import-report.json").display()
    );
    ExitCode::from(exit::OK)
}
