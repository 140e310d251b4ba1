//! Writes a generated manifest to stdout:
//! `cargo run --release --example gen_manifest -- TOOLS CAPS_PER_TOOL SEED > big.json`
//! (defaults: 3000 10 42).

use std::io::Write as _;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!(
                    "usage: gen_manifest [TOOLS [CAPS_PER_TOOL [SEED]]]; {a:?} is not a number"
                );
                std::process::exit(2)
            })
        })
    };
    let text = capgate::generate::manifest(num(0, 3000) as usize, num(1, 10) as usize, num(2, 42));
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .expect("stdout");
}
