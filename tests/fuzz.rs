//! Stable-toolchain fuzzing: a seeded mutation fuzzer for the grammar and for
//! manifest → every target, seeded from every `fixtures/**/*.json`.
//!
//! - `fuzz_smoke` runs in every `cargo test` for a few seconds (fixed seed, so
//!   a failure reproduces);
//! - `fuzz_long` is `#[ignore]`d and runs for `CAPGATE_FUZZ_SECONDS` (default
//!   60) with a fresh seed: `scripts/fuzz.sh --engine stable --seconds 300`, or
//!   `CAPGATE_FUZZ_SECONDS=300 cargo test --release --test fuzz -- --ignored --nocapture`.
//!   Set `CAPGATE_FUZZ_SEED` to replay a run.
//!
//! The oracle is the same as the injection corpus's: no panic; a failure is a
//! coded diagnostic with a location; a success keeps the output structure and
//! grants nothing undeclared (`tests/hostile`). A failing input is written to
//! the target directory and its path printed. The libFuzzer targets in `fuzz/`
//! (nightly, `cargo fuzz`) use the same oracle.

mod hostile;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::Code;
use hostile::Declared;

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Fragments that matter to the grammar and to the output formats.
const TOKENS: &[&str] = &[
    ":",
    ":",
    "\"",
    "?",
    "&",
    "=",
    ",",
    "/",
    "**",
    "*",
    "..",
    ".",
    "-",
    "--",
    "\n",
    "\r",
    "\t",
    "\0",
    " ",
    "#",
    ";",
    "{",
    "}",
    "[",
    "]",
    "\\",
    "%",
    "@",
    "~",
    "+",
    "é",
    "e\u{301}",
    "а",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{2028}",
    "\u{85}",
    "::1",
    "::ffff:",
    "0.0.0.0/0",
    "::/0",
    "10.",
    "0x7f",
    "443",
    "0",
    "65536",
    "+1",
    "unix:",
    "dbus:",
    "x11",
    "nestedSandbox=true",
    "nestedSandbox",
    "fs",
    "net",
    "exec",
    "env",
    "ipc",
    "clock",
    "assert",
    "read",
    "write",
    "create",
    "delete",
    "connect",
    "spawn",
    "inject",
    "system",
    "tzdata",
    "proc",
    "docker.sock",
    "LD_PRELOAD",
    "http_access allow all",
    "accept",
    "*.",
    "xn--",
];

/// JSON-level fragments for byte mutations of whole manifests.
const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\u0000",
    "\\ud800",
    "\\n",
    "null",
    "true",
    "0",
    "1e999",
    "\"tools\"",
    "\"capabilities\"",
    "\"name\"",
    "\"serverCapabilities\"",
    "\"grammar\"",
    "\u{feff}",
    "\u{ff}",
    "[[[[[[[[",
    "]]]]",
];

struct Seeds {
    manifests: Vec<Vec<u8>>,
    capabilities: Vec<String>,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn seeds() -> Seeds {
    let mut files = Vec::new();
    json_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut files,
    );
    files.sort();
    let mut manifests = Vec::new();
    let mut capabilities = Vec::new();
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let mut lists = vec![v.get("serverCapabilities")];
            if let Some(t) = v.get("tools").and_then(|t| t.as_array()) {
                lists.extend(t.iter().map(|t| t.get("capabilities")));
            }
            for list in lists.into_iter().flatten().filter_map(|l| l.as_array()) {
                capabilities.extend(list.iter().filter_map(|c| c.as_str()).map(str::to_owned));
            }
        }
        manifests.push(bytes);
    }
    assert!(
        manifests.len() > 50 && capabilities.len() > 100,
        "too few seeds"
    );
    Seeds {
        manifests,
        capabilities,
    }
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One to four edits of a capability string: insert a token, delete or
/// duplicate a range, swap with another seed's tail, change case.
fn mutate_capability(rng: &mut Rng, seeds: &[String]) -> String {
    let mut s = rng.pick(seeds).clone();
    for _ in 0..1 + rng.below(4) {
        let at = char_boundary(&s, rng.below(s.len() + 1));
        match rng.below(6) {
            0 | 1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.insert_str(at, t)
            }
            2 => {
                let end = char_boundary(&s, at + rng.below(8));
                s.replace_range(at..end, "");
            }
            3 => {
                let end = char_boundary(&s, at + rng.below(12));
                let dup = s[at..end].to_owned();
                s.insert_str(end, &dup);
            }
            4 => {
                let other = rng.pick(seeds);
                let from = char_boundary(other, rng.below(other.len() + 1));
                s.truncate(at);
                s.push_str(&other[from..]);
            }
            _ => s = s.to_uppercase(),
        }
    }
    s
}

/// A manifest mutated either structurally (its capability strings replaced,
/// added or mutated; tools duplicated) or as raw bytes.
fn mutate_manifest(rng: &mut Rng, seeds: &Seeds) -> Vec<u8> {
    let base = rng.pick(&seeds.manifests).clone();
    if rng.below(3) > 0 {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&base) {
            if let Some(tools) = v.get_mut("tools").and_then(|t| t.as_array_mut()) {
                if tools.is_empty() {
                    tools.push(serde_json::json!({"name": "t", "capabilities": []}));
                }
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(tools.len());
                    if rng.below(8) == 0 {
                        let copy = tools[i].clone();
                        tools.push(copy);
                        continue;
                    }
                    if let Some(caps) = tools[i]
                        .get_mut("capabilities")
                        .and_then(|c| c.as_array_mut())
                    {
                        let cap = if rng.below(3) == 0 {
                            rng.pick(&seeds.capabilities).clone()
                        } else {
                            mutate_capability(rng, &seeds.capabilities)
                        };
                        if caps.is_empty() || rng.below(2) == 0 {
                            caps.push(cap.into());
                        } else {
                            let j = rng.below(caps.len());
                            caps[j] = cap.into();
                        }
                    }
                }
            }
            return serde_json::to_vec_pretty(&v).unwrap();
        }
    }
    let mut b = base;
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 => {
                let t = rng.pick(JSON_TOKENS).as_bytes().to_vec();
                b.splice(at..at, t);
            }
            1 => {
                let end = (at + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            2 if at < b.len() => b[at] = rng.next() as u8,
            _ => {
                let t = rng.pick(TOKENS).as_bytes().to_vec();
                b.splice(at..at, t);
            }
        }
    }
    b
}

fn check_capability(raw: &str) -> Result<(), String> {
    match capgate::syntax::parse_capability(raw) {
        Ok(cap) => {
            let mut d = Declared::default();
            d.add(&cap);
            if raw.chars().any(char::is_control) {
                return Err("accepted a control character".to_owned());
            }
            Ok(())
        }
        Err(e) => {
            let s = &e.span;
            if s.start > s.end
                || s.end > raw.len()
                || !raw.is_char_boundary(s.start)
                || !raw.is_char_boundary(s.end)
            {
                return Err(format!("error span {s:?} does not fit"));
            }
            Ok(())
        }
    }
}

fn check_manifest(compilers: &[(&str, Compiler)], bytes: &[u8]) -> Result<(), String> {
    let declared = Declared::from_manifest(bytes);
    for (target, c) in compilers {
        for permissive in [false, true] {
            let settings = Settings {
                permissive,
                set: vec![],
            };
            match c.compile("fuzz.json", bytes, &settings) {
                Err(diags) => {
                    let located = diags
                        .first()
                        .is_some_and(|d| d.code != Code::ManifestTooLarge);
                    hostile::check_diagnostics(&diags, "fuzz.json", located)
                }
                Ok(out) => hostile::check_artifact(target, &out.artifact, &declared),
            }
            .map_err(|e| format!("{target} (permissive: {permissive}): {e}"))?;
        }
    }
    Ok(())
}

fn save(bytes: &[u8], what: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!("{what}-{}-{nanos}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Fuzzes for `duration`; returns (grammar inputs, manifest inputs) tried.
fn fuzz(duration: Duration, seed: u64) -> (usize, usize) {
    eprintln!("fuzz: seed {seed} for {duration:?} (replay: CAPGATE_FUZZ_SEED={seed})");
    let seeds = seeds();
    let compilers: Vec<(&str, Compiler)> = ["bwrap", "docker", "squid", "nftables", "srt"]
        .into_iter()
        .map(|t| {
            (
                t,
                Compiler::new(&Assets::default(), t).expect("built-in target"),
            )
        })
        .collect();
    let mut rng = Rng(seed | 1);
    let (mut grammar, mut manifests) = (0, 0);
    let deadline = Instant::now() + duration;
    // Every seed manifest as it is, first.
    let mut queue: Vec<Vec<u8>> = seeds.manifests.clone();
    while Instant::now() < deadline || !queue.is_empty() {
        // Grammar inputs are cheap: several per manifest.
        for _ in 0..8 {
            let raw = mutate_capability(&mut rng, &seeds.capabilities);
            let result =
                catch_unwind(|| check_capability(&raw)).unwrap_or_else(|_| Err("panic".to_owned()));
            if let Err(e) = result {
                let path = save(raw.as_bytes(), "grammar");
                panic!("grammar: {e} on {raw:?} (saved to {})", path.display());
            }
            grammar += 1;
        }
        let bytes = queue
            .pop()
            .unwrap_or_else(|| mutate_manifest(&mut rng, &seeds));
        let result = catch_unwind(AssertUnwindSafe(|| check_manifest(&compilers, &bytes)))
            .unwrap_or_else(|_| Err("panic".to_owned()));
        if let Err(e) = result {
            let path = save(&bytes, "manifest");
            panic!(
                "manifest: {e}\ninput saved to {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            );
        }
        manifests += 1;
    }
    eprintln!(
        "fuzz: {grammar} capability strings, {manifests} manifests × 4 targets × strict/permissive"
    );
    (grammar, manifests)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A short bounded run in every `cargo test`.
#[test]
fn fuzz_smoke() {
    let seconds = env_u64("CAPGATE_FUZZ_SMOKE_SECONDS").unwrap_or(3);
    let (g, m) = fuzz(
        Duration::from_secs(seconds),
        env_u64("CAPGATE_FUZZ_SEED").unwrap_or(0x5eed_cafe),
    );
    assert!(
        g > 1000 && m > 100,
        "only {g} grammar and {m} manifest inputs"
    );
}

/// The long run: `CAPGATE_FUZZ_SECONDS` (default 60), fresh seed unless `CAPGATE_FUZZ_SEED`.
#[test]
#[ignore = "long-running; scripts/fuzz.sh runs it"]
fn fuzz_long() {
    let seconds = env_u64("CAPGATE_FUZZ_SECONDS").unwrap_or(60);
    let seed = env_u64("CAPGATE_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    fuzz(Duration::from_secs(seconds), seed);
}
