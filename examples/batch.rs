//! Batch compilation through the library, with wall-clock throughput, for
//! `scripts/bench-process.sh` (the CLI's batch mode uses the same
//! `capgate::batch` functions):
//!
//! `cargo run --release --example batch -- --target T --out DIR [--jobs N] [--permissive] INPUT|DIR...`
//!
//! Prints the failure summary and `N manifests in S s (R manifests/s, J jobs)`
//! on stderr; exits 4 if any manifest failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use capgate::assets::Assets;
use capgate::batch::{compile_batch_jobs, expand_inputs};
use capgate::compile::{Compiler, Settings};

fn usage() -> ExitCode {
    eprintln!("usage: batch --target T --out DIR [--jobs N] [--permissive] INPUT|DIR...");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut target, mut out, mut jobs, mut permissive) = (None, None, None, false);
    let mut inputs = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--target" => target = args.next(),
            "--out" => out = args.next().map(PathBuf::from),
            "--jobs" => jobs = args.next().and_then(|n| n.parse::<usize>().ok()),
            "--permissive" => permissive = true,
            _ => inputs.push(PathBuf::from(a)),
        }
    }
    let (Some(target), Some(out)) = (target, out) else {
        return usage();
    };
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let start = Instant::now();
    let compiler = match Compiler::new(&Assets::default(), &target) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d:?}");
            return ExitCode::from(2);
        }
    };
    let inputs = match expand_inputs(&inputs) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("cannot list inputs: {e}");
            return ExitCode::from(3);
        }
    };
    let settings = Settings {
        permissive,
        set: Vec::new(),
    };
    let report = compile_batch_jobs(&compiler, &inputs, &out, &settings, false, None, jobs);
    let secs = start.elapsed().as_secs_f64();
    if report.any_failed() {
        eprint!("{}", report.summary());
    }
    eprintln!(
        "{} manifests in {secs:.3} s ({:.0} manifests/s, {jobs} jobs)",
        inputs.len(),
        inputs.len() as f64 / secs
    );
    ExitCode::from(report.exit_code())
}
