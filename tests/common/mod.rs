//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Output, Settings};
use capgate::diag::{Code, Diagnostic};

pub const TARGETS: [&str; 8] = [
    "bwrap",
    "docker",
    "squid",
    "nftables",
    "oci",
    "systemd",
    "kubernetes",
    "srt",
];

/// srt's `socket_dir` default (rules/srt.toml), which its output uses when
/// net is declared.
pub const SRT_SOCKET_DIR: &str = "/tmp/capgate-srt";

/// The refusal a built-in target gives a manifest with its default options,
/// whatever else the manifest holds: a writable declaration at or above a
/// host path option the output uses (`OPTION_IN_WRITABLE`, docs/errors.md).
/// Modelled for srt's `socket_dir`, the one such default a fixture or a
/// generated manifest reaches (puppeteer declares all of /tmp writable).
pub fn default_option_refusal(target: &str, manifest: &[u8]) -> Option<Code> {
    use capgate::capability::Capability;
    let v: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let mut lists = vec![v.get("serverCapabilities")];
    if let Some(tools) = v.get("tools").and_then(|t| t.as_array()) {
        lists.extend(tools.iter().map(|t| t.get("capabilities")));
    }
    let caps: Vec<Capability> = lists
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_array())
        .flatten()
        .filter_map(|c| c.as_str())
        .filter_map(|c| capgate::syntax::parse_capability(c).ok())
        .collect();
    let net = caps.iter().any(|c| matches!(c, Capability::Net { .. }));
    let holds = |source: &str| {
        caps.iter().any(|c| match c {
            Capability::Fs { actions, path } => {
                let p = path.path.as_str();
                actions.closure().writable()
                    && (source == p || source.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
            }
            _ => false,
        })
    };
    (target == "srt" && net && holds(SRT_SOCKET_DIR)).then_some(Code::OptionInWritable)
}

/// Compiles a fixture, or returns `None` if [`default_option_refusal`]
/// predicts a refusal, which the compile must then give and only it.
pub fn compile_unless_refused(
    compiler: &Compiler,
    target: &str,
    name: &str,
    bytes: &[u8],
    settings: &Settings,
) -> Option<Output> {
    let render = |d: &[Diagnostic]| d.iter().map(Diagnostic::render).collect::<String>();
    match (
        default_option_refusal(target, bytes),
        compiler.compile(name, bytes, settings),
    ) {
        (None, Ok(out)) => Some(out),
        (Some(code), Err(d)) if d.iter().all(|d| d.code == code) => None,
        (Some(code), Ok(_)) => panic!("{target} {name}: compiled, expected {code:?}"),
        (_, Err(d)) => panic!("{target} {name}:\n{}", render(&d)),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path as shown in diagnostics and snapshots: relative to the repository.
pub fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

pub fn compile(path: &Path, target: &str, permissive: bool) -> Result<Output, Vec<Diagnostic>> {
    let compiler = Compiler::new(&Assets::default(), target).expect("built-in target loads");
    let bytes = std::fs::read(path).unwrap();
    compiler.compile(
        &display(path),
        &bytes,
        &Settings {
            permissive,
            set: vec![],
        },
    )
}

pub fn render_errors(diags: &[Diagnostic]) -> String {
    diags.iter().map(Diagnostic::render).collect()
}

/// What a snapshot shows for one manifest and target: the strict result, and
/// when strict compilation fails with ADAPTER_UNSUPPORTED, the permissive one too.
pub fn outcome(path: &Path, target: &str) -> String {
    match compile(path, target, false) {
        Ok(out) => out.artifact.to_json(true),
        Err(diags) => {
            let mut s = format!("strict: error\n{}", render_errors(&diags));
            if diags[0].code == capgate::diag::Code::AdapterUnsupported {
                let out = compile(path, target, true).expect("permissive compiles");
                s.push_str("\n--permissive:\n");
                s.push_str(&out.artifact.to_json(true));
            }
            s
        }
    }
}

/// What the capgate binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built binary from the crate root with `args` and optional stdin.
pub fn capgate(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(args)
        .current_dir(root())
        .env("COLUMNS", "100")
        .env_remove("RUST_BACKTRACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        // capgate may exit before reading stdin (e.g. an unknown target): ignore EPIPE.
        let _ = child.stdin.take().unwrap().write_all(bytes);
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out
            .status
            .code()
            .expect("exited normally (no signal, no panic abort)"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// A scratch directory under the system temp dir, removed on drop (also
/// when the test panics); unique per process and per call.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "capgate-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
