//! Compile-time benchmarks: every stage, every target, fixtures and generated
//! manifests. Run with `cargo bench --bench compile` (see docs/performance.md);
//! filter with a substring, e.g. `cargo bench --bench compile -- gen-3000`.
//!
//! Cases: every `fixtures/manifests/*.json`, generated manifests of 10, 100,
//! 300, 1,000 and 3,000 tools × 10 capabilities (`capgate::generate`, seed
//! 42), and the 3,000-tool one written on a single line (`gen-3000-oneline`).
//! Benchmarks:
//!
//! - `stages::load`: JSON parse and shape check (`manifest::load`);
//! - `stages::parse_caps`: every capability string through the grammar;
//! - `stages::normalise`: typed capabilities → facts (`ir::normalise`);
//! - `<target>::lower`: facts × rules → rendered fragments (`lower::lower`);
//! - `<target>::compile`: the whole `Compiler::compile` (all of the above,
//!   plus the entry template, line attribution and the artifact value);
//! - `<target>::to_json`: serialising the artifact (what the CLI prints);
//! - `<target>::compiler_new`: loading rules and compiling templates, once
//!   per process.
//!
//! bwrap and docker compile strictly; squid and nftables with `--permissive`
//! (they lower only net, so strict compiles of mixed manifests fail).

use std::collections::BTreeMap;
use std::sync::LazyLock;

// The same allocator as the capgate binary, so in-process figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use capgate::assets::Assets;
use capgate::compile::{resolve_options, Compiler, Settings};
use capgate::ir::{self, CapId, CapInfo, Policy};
use capgate::lower;
use capgate::manifest::{self, Manifest, Source};
use capgate::render::Renderer;
use capgate::syntax;
use divan::counter::ItemsCount;
use divan::Bencher;

fn main() {
    divan::main();
}

/// Generated sizes (tools × 10 capabilities).
const GENERATED: &[usize] = &[10, 100, 300, 1000, 3000];
const SEED: u64 = 42;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    manifest: Manifest,
    caps: Vec<CapInfo>,
    policy: Policy,
}

static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/manifests");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures/manifests")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut raw: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(p).expect("fixture"))
        })
        .collect();
    for &n in GENERATED {
        raw.push((
            format!("gen-{n}"),
            capgate::generate::manifest(n, 10, SEED).into_bytes(),
        ));
    }
    // The largest manifest again, written on one line: locating capabilities
    // must not rescan the line for each of them.
    let big = capgate::generate::manifest(GENERATED[GENERATED.len() - 1], 10, SEED);
    let value: serde_json::Value = serde_json::from_str(&big).expect("generated JSON");
    raw.push((
        format!("gen-{}-oneline", GENERATED[GENERATED.len() - 1]),
        serde_json::to_vec(&value).expect("serialises"),
    ));
    raw.into_iter()
        .map(|(name, bytes)| {
            let manifest = load(&name, &bytes);
            let caps = parse_caps(&manifest);
            let policy = ir::normalise(caps.clone());
            Case {
                name: Box::leak(name.into_boxed_str()),
                bytes,
                manifest,
                caps,
                policy,
            }
        })
        .collect()
});

fn case_names() -> Vec<&'static str> {
    CASES.iter().map(|c| c.name).collect()
}

fn case(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).expect("known case")
}

/// Number of capabilities, for throughput (capabilities per second).
fn cap_count(c: &Case) -> ItemsCount {
    ItemsCount::new(c.caps.len())
}

fn load(name: &str, bytes: &[u8]) -> Manifest {
    let source = Source::new(name, bytes);
    manifest::load(&source, bytes).expect("benchmark manifests load")
}

/// What `Compiler::compile` does between loading and normalising.
fn parse_caps(m: &Manifest) -> Vec<CapInfo> {
    let lists = std::iter::once((None, &m.server_capabilities)).chain(
        m.tools
            .iter()
            .enumerate()
            .map(|(i, t)| (Some(i), &t.capabilities)),
    );
    let mut caps = Vec::new();
    for (tool, list) in lists {
        for (index, raw) in list.iter().enumerate() {
            caps.push(CapInfo {
                tool,
                index,
                capability: syntax::parse_capability(&raw.text)
                    .expect("benchmark capabilities parse"),
            });
        }
    }
    caps
}

mod stages {
    use super::*;

    #[divan::bench(args = case_names(), max_time = 1)]
    fn load(bencher: Bencher, name: &str) {
        let c = case(name);
        bencher
            .counter(cap_count(c))
            .bench(|| super::load(c.name, &c.bytes));
    }

    #[divan::bench(args = case_names(), max_time = 1)]
    fn parse_caps(bencher: Bencher, name: &str) {
        let c = case(name);
        bencher
            .counter(cap_count(c))
            .bench(|| super::parse_caps(&c.manifest));
    }

    #[divan::bench(args = case_names(), max_time = 1)]
    fn normalise(bencher: Bencher, name: &str) {
        let c = case(name);
        bencher
            .counter(cap_count(c))
            .with_inputs(|| c.caps.clone())
            .bench_values(ir::normalise);
    }
}

/// A target's compiler and renderer, built once per benchmark process.
struct Prepared {
    compiler: Compiler,
    renderer: Renderer,
    settings: Settings,
}

static PREPARED: LazyLock<BTreeMap<&'static str, Prepared>> = LazyLock::new(|| {
    [
        ("bwrap", false),
        ("docker", false),
        ("squid", true),
        ("nftables", true),
    ]
    .into_iter()
    .map(|(t, permissive)| {
        let compiler =
            Compiler::new(&Assets::default(), t).unwrap_or_else(|d| panic!("{t}: {d:?}"));
        let renderer = Renderer::new(&Assets::default(), &compiler.target).expect("renderer");
        let settings = Settings {
            permissive,
            set: Vec::new(),
        };
        (
            t,
            Prepared {
                compiler,
                renderer,
                settings,
            },
        )
    })
    .collect()
});

fn bench_compiler_new(target: &str) -> Compiler {
    Compiler::new(&Assets::default(), target).expect("built-in target")
}

fn bench_lower(bencher: Bencher, target: &str, name: &str) {
    let p = &PREPARED[target];
    let c = case(name);
    let policy = &c.policy;
    let options = resolve_options(&p.compiler.target, &[]).expect("default options");
    // Same text `Compiler::compile` passes to templates as `capabilities`.
    let describe = |ids: &[CapId]| -> Vec<String> {
        ids.iter()
            .map(|&id| {
                let info = &policy.caps[id as usize];
                let list = match info.tool {
                    Some(t) => &c.manifest.tools[t].capabilities,
                    None => &c.manifest.server_capabilities,
                };
                let text = &list[info.index].text;
                match info.tool {
                    Some(t) => format!("{text} (tool \"{}\")", c.manifest.tools[t].name),
                    None => format!("{text} (serverCapabilities)"),
                }
            })
            .collect()
    };
    bencher.counter(cap_count(c)).bench(|| {
        let base = lower::base_context(policy, &p.compiler.target, &options);
        lower::lower(policy, &p.compiler.target, &p.renderer, &base, &describe)
            .map_err(|d| format!("{d:?}"))
    });
}

fn bench_compile(bencher: Bencher, target: &str, name: &str) {
    let p = &PREPARED[target];
    let c = case(name);
    bencher.counter(cap_count(c)).bench(|| {
        p.compiler
            .compile(c.name, &c.bytes, &p.settings)
            .unwrap_or_else(|d| panic!("{target} {name}: {d:?}"))
    });
}

fn bench_to_json(bencher: Bencher, target: &str, name: &str) {
    let p = &PREPARED[target];
    let c = case(name);
    let out = p
        .compiler
        .compile(c.name, &c.bytes, &p.settings)
        .expect("compiles");
    bencher
        .counter(cap_count(c))
        .bench(|| out.artifact.to_json(false));
}

macro_rules! per_target {
    ($($module:ident => $target:literal),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[divan::bench(max_time = 1)]
            fn compiler_new() -> Compiler {
                bench_compiler_new($target)
            }

            #[divan::bench(args = case_names(), max_time = 1)]
            fn lower(bencher: Bencher, name: &str) {
                bench_lower(bencher, $target, name);
            }

            #[divan::bench(args = case_names(), max_time = 1)]
            fn compile(bencher: Bencher, name: &str) {
                bench_compile(bencher, $target, name);
            }

            #[divan::bench(args = case_names(), max_time = 1)]
            fn to_json(bencher: Bencher, name: &str) {
                bench_to_json(bencher, $target, name);
            }
        }
    )*};
}

per_target!(bwrap => "bwrap", docker => "docker", squid => "squid", nftables => "nftables");
