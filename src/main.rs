use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    capgate::cli::run(capgate::cli::Cli::parse())
}
