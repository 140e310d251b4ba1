//! Parses one capability per input line (a JSON string) and prints one result
//! per line: `OK <value>` or `ERR <code> <message> <span> <help>`, in Debug
//! form. `scripts/parse-differential.sh` runs two builds of it on the same
//! corpus, so that a grammar or pest change can be shown to accept the same
//! language with the same values and errors.
use std::io::{BufRead, Write};

fn main() -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let Ok(raw) = serde_json::from_str::<String>(&line) else {
            // Lone surrogates and other text a Rust string cannot hold.
            writeln!(out, "SKIP line {}", n + 1)?;
            continue;
        };
        match capgate::syntax::parse_capability(&raw) {
            Ok(c) => writeln!(out, "OK {c:?}")?,
            Err(e) => writeln!(
                out,
                "ERR {:?} {:?} {:?} {:?}",
                e.code, e.message, e.span, e.help
            )?,
        }
    }
    out.flush()
}
