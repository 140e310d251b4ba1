//! Batch compilation: many manifests, one target, one process, every core.
//!
//! [`expand_inputs`] turns command-line arguments into manifest paths (a
//! directory stands for its `*.json` files). [`compile_batch`] compiles each
//! of them with one shared [`Compiler`] on a pool of scoped threads and
//! writes one artifact file per manifest, `<out_dir>/<stem>.<target>.json`.
//! A manifest that fails never stops the others: every input gets an entry in
//! the [`BatchReport`], in input order.
//!
//! Inputs whose artifacts would land on the same file (`a/x.json` and
//! `b/x.json`), or whose artifact would overwrite one of the inputs, are not
//! compiled at all: picking a winner would silently lose a policy.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::compile::{Compiler, Settings};
use crate::diag::{self, Code, Diagnostic};

/// Why one input produced no artifact.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The manifest could not be read (`INPUT_UNREADABLE`) or did not compile.
    Compile(Vec<Diagnostic>),
    /// Other inputs would write the same artifact file; none of them is compiled.
    DuplicateOutput {
        output: PathBuf,
        others: Vec<PathBuf>,
    },
    /// The artifact file would overwrite an input manifest.
    OverwritesInput { output: PathBuf },
    /// The input path has no file name to derive the artifact's name from.
    NoFileName,
    /// The artifact could not be written.
    Write { output: PathBuf, error: String },
}

impl Failure {
    /// The process exit-code class this failure belongs to (3 for unreadable
    /// or invalid JSON, 4 for everything else); a batch exits with
    /// [`diag::exit::COMPILE`] whenever anything failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Compile(d) => d
                .first()
                .map_or(diag::exit::COMPILE, |d| d.code.exit_code()),
            _ => diag::exit::COMPILE,
        }
    }

    /// Human-readable text: the diagnostics as `capgate compile` prints them,
    /// or one `capgate: batch: ...` paragraph.
    pub fn render(&self) -> String {
        match self {
            Failure::Compile(diags) => diags.iter().map(Diagnostic::render).collect(),
            other => format!("capgate: batch: {other}\n\n"),
        }
    }

    /// The diagnostics of a read or compile failure (for `--error-format
    /// json`); `None` for the batch's own failures, which have no diagnostic
    /// code: print their [`Display`](fmt::Display) text instead.
    pub fn diagnostics(&self) -> Option<&[Diagnostic]> {
        match self {
            Failure::Compile(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Compile(d) => match d.first() {
                Some(first) => write!(
                    f,
                    "{}: {}{}",
                    first.code.as_str(),
                    first.message,
                    if d.len() > 1 { format!(" (and {} more)", d.len() - 1) } else { String::new() }
                ),
                None => f.write_str("compile failed"),
            },
            Failure::DuplicateOutput { output, others } => write!(
                f,
                "not compiled: {} would also be written by {}; rename one of the manifests or compile them into different --out directories",
                diag::quote(&output.display().to_string()),
                others
                    .iter()
                    .map(|p| diag::quote(&p.display().to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Failure::OverwritesInput { output } => write!(
                f,
                "not compiled: the artifact {} would overwrite an input manifest; choose another --out directory",
                diag::quote(&output.display().to_string())
            ),
            Failure::NoFileName => f.write_str("not compiled: the path has no file name to name the artifact after"),
            Failure::Write { output, error } => write!(
                f,
                "compiled, but the artifact {} could not be written: {error}",
                diag::quote(&output.display().to_string())
            ),
        }
    }
}

/// The outcome for one input.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub input: PathBuf,
    /// The artifact file written, or why there is none.
    pub result: Result<PathBuf, Failure>,
}

/// Every input's outcome, in input order.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub items: Vec<BatchItem>,
}

impl BatchReport {
    /// Inputs that produced an artifact.
    pub fn succeeded(&self) -> usize {
        self.items.iter().filter(|i| i.result.is_ok()).count()
    }

    /// Inputs that did not, with the reason.
    pub fn failures(&self) -> impl Iterator<Item = (&Path, &Failure)> {
        self.items
            .iter()
            .filter_map(|i| i.result.as_ref().err().map(|f| (i.input.as_path(), f)))
    }

    pub fn any_failed(&self) -> bool {
        self.items.iter().any(|i| i.result.is_err())
    }

    /// 0 when every input compiled, else [`diag::exit::COMPILE`] (4).
    pub fn exit_code(&self) -> u8 {
        if self.any_failed() {
            diag::exit::COMPILE
        } else {
            diag::exit::OK
        }
    }

    /// A short plain-text summary: a count line, then one line per failure.
    pub fn summary(&self) -> String {
        let failed = self.items.len() - self.succeeded();
        let mut out = format!(
            "capgate: batch: {} of {} manifest(s) compiled, {failed} failed\n",
            self.succeeded(),
            self.items.len()
        );
        for (input, failure) in self.failures() {
            out.push_str(&format!("  {}: {failure}\n", input.display()));
        }
        out
    }
}

/// Expands arguments into manifest paths: a directory becomes its `*.json`
/// files (regular files or links to them, not recursive, sorted by name);
/// anything else is kept as given, so a missing file fails later as that
/// input's `INPUT_UNREADABLE`. A path listed twice is kept once (first place).
pub fn expand_inputs(args: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for arg in args {
        let mut found = Vec::new();
        if arg.is_dir() {
            for entry in fs::read_dir(arg)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "json") && path.is_file() {
                    found.push(path);
                }
            }
            found.sort();
        } else {
            found.push(arg.clone());
        }
        for p in found {
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The artifact file name for an input: `<stem>.<target>.json`.
pub fn artifact_name(input: &Path, target: &str) -> Option<String> {
    let stem = input.file_stem()?.to_string_lossy();
    Some(format!("{stem}.{target}.json"))
}

/// Compiles every input with `compiler`, using every available core. See
/// [`compile_batch_jobs`].
pub fn compile_batch(
    compiler: &Compiler,
    inputs: &[PathBuf],
    out_dir: &Path,
    settings: &Settings,
    pretty: bool,
    progress: Option<&dyn Fn(usize, usize)>,
) -> BatchReport {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    compile_batch_jobs(compiler, inputs, out_dir, settings, pretty, progress, jobs)
}

/// Compiles every input on `jobs` worker threads (at least one, at most one
/// per input) and writes `<out_dir>/<stem>.<target>.json` for each success
/// (creating `out_dir` if needed; each file is written whole, through a
/// temporary file and a rename). `progress(done, total)` is called on the
/// calling thread after each input finishes, in completion order.
pub fn compile_batch_jobs(
    compiler: &Compiler,
    inputs: &[PathBuf],
    out_dir: &Path,
    settings: &Settings,
    pretty: bool,
    progress: Option<&dyn Fn(usize, usize)>,
    jobs: usize,
) -> BatchReport {
    let total = inputs.len();
    let mut results: Vec<Option<Result<PathBuf, Failure>>> =
        plan(inputs, out_dir, &compiler.target.name);
    let work: Vec<(usize, PathBuf)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Some(Ok(out)) => Some((i, out.clone())),
            _ => None,
        })
        .collect();
    let mut done = total - work.len();
    if let Some(p) = progress {
        if done > 0 {
            p(done, total);
        }
    }
    if !work.is_empty() {
        if let Err(e) = fs::create_dir_all(out_dir) {
            for (i, out) in &work {
                results[*i] = Some(Err(Failure::Write {
                    output: out.clone(),
                    error: format!("cannot create the output directory: {e}"),
                }));
            }
        } else {
            let next = AtomicUsize::new(0);
            let (tx, rx) = mpsc::channel();
            let workers = jobs.clamp(1, work.len());
            std::thread::scope(|s| {
                for _ in 0..workers {
                    let tx = tx.clone();
                    let (next, work) = (&next, &work);
                    s.spawn(move || loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some((i, out)) = work.get(n) else { break };
                        let r = compile_one(compiler, &inputs[*i], out, settings, pretty);
                        if tx.send((*i, r)).is_err() {
                            break;
                        }
                    });
                }
                drop(tx);
                for (i, r) in rx {
                    results[i] = Some(r);
                    done += 1;
                    if let Some(p) = progress {
                        p(done, total);
                    }
                }
            });
        }
    }
    BatchReport {
        items: inputs
            .iter()
            .zip(results)
            .map(|(input, r)| BatchItem {
                input: input.clone(),
                result: r.expect("every input has a result"),
            })
            .collect(),
    }
}

/// Output path per input (`Some(Ok)`: to compile), or the reason it is not compiled.
fn plan(inputs: &[PathBuf], out_dir: &Path, target: &str) -> Vec<Option<Result<PathBuf, Failure>>> {
    let outputs: Vec<Option<PathBuf>> = inputs
        .iter()
        .map(|p| artifact_name(p, target).map(|n| out_dir.join(n)))
        .collect();
    let mut by_output: HashMap<&Path, Vec<usize>> = HashMap::new();
    for (i, o) in outputs.iter().enumerate() {
        if let Some(o) = o {
            by_output.entry(o.as_path()).or_default().push(i);
        }
    }
    // Inputs as the file system sees them, to catch an artifact landing on one.
    let canonical_inputs: HashSet<PathBuf> = inputs
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    let canonical_out = fs::canonicalize(out_dir).ok();
    outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let Some(o) = o else {
                return Some(Err(Failure::NoFileName));
            };
            let sharing = &by_output[o.as_path()];
            if sharing.len() > 1 {
                return Some(Err(Failure::DuplicateOutput {
                    output: o.clone(),
                    others: sharing
                        .iter()
                        .filter(|&&j| j != i)
                        .map(|&j| inputs[j].clone())
                        .collect(),
                }));
            }
            let lands_on_input = canonical_out
                .as_ref()
                .zip(o.file_name())
                .is_some_and(|(dir, name)| canonical_inputs.contains(&dir.join(name)));
            if lands_on_input {
                return Some(Err(Failure::OverwritesInput { output: o.clone() }));
            }
            Some(Ok(o.clone()))
        })
        .collect()
}

fn compile_one(
    compiler: &Compiler,
    input: &Path,
    output: &Path,
    settings: &Settings,
    pretty: bool,
) -> Result<PathBuf, Failure> {
    let name = input.display().to_string();
    let bytes = crate::manifest::read_file_bounded(input).map_err(|e| {
        Failure::Compile(vec![Diagnostic::new(
            Code::InputUnreadable,
            format!("failed to read manifest {}: {e}", diag::quote(&name)),
        )])
    })?;
    let out = compiler
        .compile(&name, &bytes, settings)
        .map_err(Failure::Compile)?;
    let text = out.artifact.to_json(pretty);
    write_whole(output, text.as_bytes()).map_err(|e| Failure::Write {
        output: output.to_owned(),
        error: e.to_string(),
    })?;
    Ok(output.to_owned())
}

/// Writes through a temporary file in the same directory and renames it, so
/// a reader never sees half an artifact.
///
/// The temporary file is created exclusively (`O_CREAT|O_EXCL`, which never
/// follows a symlink: a link planted at its name makes the open fail, and
/// another name is tried) under a name that is hard to guess. The rename
/// then replaces whatever is at the final name, a symlink included, without
/// following it: nothing outside the artifact file is ever written.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{}.{nanos:08x}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = file.write_all(bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch compilation shares one compiler between threads.
    #[test]
    fn compiler_is_sync() {
        fn sync<T: Sync>() {}
        sync::<Compiler>();
    }

    #[test]
    fn artifact_names() {
        assert_eq!(
            artifact_name(Path::new("a/b/x.json"), "bwrap").as_deref(),
            Some("x.bwrap.json")
        );
        assert_eq!(
            artifact_name(Path::new("x.tar.json"), "squid").as_deref(),
            Some("x.tar.squid.json")
        );
        assert_eq!(artifact_name(Path::new(".."), "squid"), None);
    }
}
