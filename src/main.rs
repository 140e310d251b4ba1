use std::io::Write as _;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser as _;

use capgate::cli::{report, Cli, ErrorFormat};

// Compiling a large manifest is allocation-heavy (pest parse states, small
// strings); mimalloc measurably cuts it (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use capgate::diag::{Code, Diagnostic};

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => capgate::cli::run(cli),
        // --help and --version are answers, not errors: stdout, exit 0.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = write!(std::io::stdout(), "{}", e.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Every failure starts with `capgate: <CODE>:`, usage errors included.
            let text = e.render().to_string();
            let required;
            let (message, rest) = match e.kind() {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    // Named from the parser itself, so a new command is never left out.
                    let cmd = <Cli as clap::CommandFactory>::command();
                    let names: Vec<&str> = cmd
                        .get_subcommands()
                        .filter(|s| !s.is_hide_set())
                        .map(|s| s.get_name())
                        .collect();
                    required = format!("a command is required: {}", names.join(", "));
                    (required.as_str(), text.as_str())
                }
                _ => {
                    let text = text.trim_start_matches("error: ");
                    text.split_once('\n').unwrap_or((text, ""))
                }
            };
            let rest: Vec<&str> = rest
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .collect();
            let mut d = Diagnostic::new(Code::Usage, message.trim().to_owned());
            if !rest.is_empty() {
                d = d.with_help(rest.join("\n     "));
            }
            report(&[d], ErrorFormat::Text)
        }
    }
}
