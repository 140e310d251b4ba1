//! Synthetic manifests for benchmarks and scaling tests.
//!
//! [`manifest`] writes a deterministic manifest of `tools` tools with
//! `caps_per_tool` capabilities each: a mix of fs (40 %), net (30 %), env
//! (15 %) and exec (15 %) capabilities with many overlapping paths
//! (`/workspace/**`, `/workspace/g3/**`, `/workspace/g3/t25/**`, a file below
//! that, ...), names, wildcards, IP literals (some in private ranges), ports
//! and any-port grants. The pools of paths, hosts and names grow with the
//! number of tools, so the number of distinct facts grows with the manifest.
//!
//! Every generated manifest compiles for `bwrap` and `docker` strictly and for
//! `squid` and `nftables` with `--permissive` (those targets only lower net).
//! The same `(tools, caps_per_tool, seed)` always gives the same bytes: the
//! PRNG is a built-in SplitMix64.

use std::fmt::Write as _;

/// SplitMix64: tiny, fast and good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A pretty-printed manifest (one capability per line), as a person would write it.
pub fn manifest(tools: usize, caps_per_tool: usize, seed: u64) -> String {
    let mut rng = Rng(seed);
    let groups = tools.div_ceil(8).max(1);
    let pool = tools.max(1);
    let mut out = String::with_capacity(tools * (caps_per_tool * 48 + 120) + 200);
    let _ = write!(
        out,
        "{{\n  \"name\": \"generated-{tools}x{caps_per_tool}-{seed}\",\n  \"version\": \"1.0.0\",\n  \"serverCapabilities\": [\n    \"fs:read:/workspace/**\",\n    \"clock:tzdata\"\n  ],\n  \"tools\": ["
    );
    for t in 0..tools {
        let g = t / 8;
        let _ = write!(
            out,
            "{}\n    {{\n      \"name\": \"tool_{t}\",\n      \"description\": \"generated tool {t} in group {g}\",\n      \"capabilities\": [",
            if t == 0 { "" } else { "," }
        );
        for c in 0..caps_per_tool {
            let cap = capability(&mut rng, t, g, groups, pool);
            let _ = write!(out, "{}\n        \"{cap}\"", if c == 0 { "" } else { "," });
        }
        out.push_str(if caps_per_tool == 0 {
            "]\n    }"
        } else {
            "\n      ]\n    }"
        });
    }
    out.push_str("\n  ]\n}\n");
    out
}

fn capability(rng: &mut Rng, t: usize, g: usize, groups: usize, pool: usize) -> String {
    let k = rng.below(8);
    match rng.below(100) {
        // ---------------------------------------------------------------- fs
        0..=39 => match rng.below(10) {
            0 => format!("fs:read:/workspace/g{g}/**"),
            1 => format!("fs:read,write:/workspace/g{g}/t{t}/**"),
            2 => format!("fs:read:/workspace/g{g}/t{t}/src/file{k}.txt"),
            3 => format!("fs:write:/workspace/g{g}/out{k}/**"),
            4 => format!("fs:read:/workspace/g{}/shared/**", rng.below(groups)),
            5 => format!("fs:read,write,create,delete:/srv/data/t{t}/**"),
            6 => format!("fs:read:/srv/data/t{t}/d{k}/*"),
            7 => format!("fs:read:/etc/gen/conf{}.json", rng.below(pool)),
            8 => format!("fs:read,write:/tmp/gen/t{t}/cache/**"),
            _ => format!("fs:read:/opt/tool{}/share/**", rng.below(pool / 4 + 1)),
        },
        // ---------------------------------------------------------------- net
        40..=69 => {
            let h = rng.below(pool);
            match rng.below(10) {
                0..=2 => format!("net:connect:api{h}.example.com:443"),
                3 => format!(
                    "net:connect:svc{h}.example.net:{}",
                    rng.pick(&["80", "443", "8080", "8443", "5000", "9090"])
                ),
                4 => format!("net:connect:*.cdn{h}.example.org:443"),
                5 => format!("net:connect:files{}.example.com", h % (pool / 2 + 1)),
                6 => format!(
                    "net:connect:10.{}.{}.{}:5432",
                    h % 256,
                    (h / 256) % 256,
                    k + 1
                ),
                7 => format!("net:connect:192.168.{}.{}:6379", h % 256, k + 1),
                8 => format!(
                    "net:connect:34.{}.{}.{}:443",
                    h % 256,
                    (h / 256) % 256,
                    k + 1
                ),
                _ => match k % 2 {
                    0 => format!("net:connect:\\\"2606:4700::{h:x}\\\":443"),
                    _ => format!("net:connect:\\\"fd00::{h:x}\\\":8080"),
                },
            }
        }
        // ---------------------------------------------------------------- env
        70..=84 => {
            let n = rng.below(pool * 2);
            match rng.below(3) {
                0 => format!("env:read:GEN_VAR_{n}"),
                1 => format!("env:inject:GEN_TOKEN_{n}"),
                _ => format!("env:read,inject:GEN_KEY_{n}"),
            }
        }
        // ---------------------------------------------------------------- exec
        _ => match rng.below(4) {
            0 => format!(
                "exec:spawn:{}",
                rng.pick(&["python3", "node", "git", "sh", "jq"])
            ),
            _ => format!("exec:spawn:tool{}", rng.below(pool)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(manifest(20, 10, 42), manifest(20, 10, 42));
        assert_ne!(manifest(20, 10, 42), manifest(20, 10, 43));
    }

    /// bwrap and docker strictly, squid and nftables permissively; every kind
    /// of fact the generator aims for is present.
    #[test]
    fn generated_manifests_compile_for_every_target() {
        use crate::assets::Assets;
        use crate::compile::{Compiler, Settings};
        let compilers: Vec<(Compiler, bool)> = [
            ("bwrap", false),
            ("docker", false),
            ("squid", true),
            ("nftables", true),
        ]
        .into_iter()
        .map(|(t, permissive)| (Compiler::new(&Assets::default(), t).unwrap(), permissive))
        .collect();
        for (tools, seed) in [(1, 1), (7, 2), (60, 3), (300, 42)] {
            let text = manifest(tools, 10, seed);
            for (c, permissive) in &compilers {
                let settings = Settings {
                    permissive: *permissive,
                    set: Vec::new(),
                };
                let out = c
                    .compile("gen.json", text.as_bytes(), &settings)
                    .unwrap_or_else(|d| {
                        panic!("{tools} tools, seed {seed}, {}: {d:?}", c.target.name)
                    });
                if tools == 300 {
                    let p = &out.trace.policy;
                    assert!(
                        p.fs.len() > 100
                            && p.net.len() > 100
                            && p.env.len() > 100
                            && p.exec.len() > 50
                    );
                    assert!(
                        p.net.iter().any(|n| n.private) && p.net.iter().any(|n| n.port.is_none())
                    );
                    assert!(p.fs.iter().any(|f| f.actions.writable()) && !p.widenings.is_empty());
                }
            }
        }
    }

    #[test]
    fn counts() {
        let m = manifest(7, 3, 1);
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        let tools = v["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 7);
        assert!(tools
            .iter()
            .all(|t| t["capabilities"].as_array().unwrap().len() == 3));
        let empty: serde_json::Value = serde_json::from_str(&manifest(0, 0, 1)).unwrap();
        assert!(empty["tools"].as_array().unwrap().is_empty());
        let no_caps: serde_json::Value = serde_json::from_str(&manifest(2, 0, 1)).unwrap();
        assert!(no_caps["tools"][1]["capabilities"]
            .as_array()
            .unwrap()
            .is_empty());
    }
}
