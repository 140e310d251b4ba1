//! Built-in rules and templates, embedded in the binary, overlaid file by file
//! by the operator's `--rules DIR` and `--templates DIR`.
//!
//! A target named `T` is `rules/T.toml` plus `templates/T/`. Templates are
//! looked up through one layered loader (operator first, then embedded); they
//! are never preloaded, because a preloaded template would shadow the loader.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

static RULES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/rules");
static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Where rule files and templates come from.
#[derive(Debug, Clone, Default)]
pub struct Assets {
    pub rules_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
}

/// Why an operator path was refused: a symlink that leads outside the
/// operator's directory (or nowhere), or something other than a regular file
/// or directory. Carried inside an [`io::Error`] so every reader of operator
/// files can tell it from an ordinary read error (`OPERATOR_PATH_UNSAFE`).
#[derive(Debug)]
pub struct UnsafePath(pub String);

impl std::fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnsafePath {}

impl UnsafePath {
    fn error(message: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, UnsafePath(message))
    }

    /// The refusal inside `e`, if `e` is one.
    pub fn of(e: &io::Error) -> Option<&UnsafePath> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<UnsafePath>())
    }
}

/// `dir/rel` if it exists, checked: it must resolve to a regular file inside
/// `dir` (symlinks that stay inside are fine). `None` if nothing is there.
fn operator_file(dir: &Path, rel: &str) -> io::Result<Option<PathBuf>> {
    let path = dir.join(rel);
    match fs::symlink_metadata(&path) {
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            // A missing file, unless a symlinked directory on the way leads
            // outside: that is checked for every existing ancestor below.
            check_ancestors(dir, rel)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let inside = resolved_inside(dir, &path)?;
    let meta = fs::metadata(&inside)?;
    if !meta.is_file() {
        return Err(UnsafePath::error(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Some(inside))
}

/// Every existing ancestor of `dir/rel` below `dir` resolves inside `dir`.
fn check_ancestors(dir: &Path, rel: &str) -> io::Result<()> {
    let mut at = dir.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        if fs::symlink_metadata(&at).is_err() {
            break;
        }
        resolved_inside(dir, &at)?;
    }
    Ok(())
}

/// `path` with every symlink resolved, refused unless it stays below `dir`.
fn resolved_inside(dir: &Path, path: &Path) -> io::Result<PathBuf> {
    let base = dir.canonicalize()?;
    match path.canonicalize() {
        Ok(real) if real.starts_with(&base) => Ok(real),
        Ok(real) => Err(UnsafePath::error(format!(
            "{} leads outside {} (to {}); operator files must stay inside their directory",
            path.display(),
            dir.display(),
            real.display()
        ))),
        Err(e) => Err(UnsafePath::error(format!(
            "{} is a symlink that cannot be resolved: {e}",
            path.display()
        ))),
    }
}

/// Every problem [`operator_file`] would report for some file of `dir`:
/// walked once before a command uses the directory, so a bad file fails the
/// command whether or not this run would have read it.
fn check_tree(dir: &Path, at: &Path, problems: &mut Vec<(PathBuf, String)>) -> io::Result<()> {
    for entry in fs::read_dir(at)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let real = match resolved_inside(dir, &path) {
            Ok(real) => real,
            Err(e) => {
                problems.push((path, e.to_string()));
                continue;
            }
        };
        let meta = fs::metadata(&real)?;
        if meta.is_dir() {
            // A symlinked directory inside is walked through its own entries
            // only when it is not a link (its target is walked anyway).
            if !kind.is_symlink() {
                check_tree(dir, &path, problems)?;
            }
        } else if !meta.is_file() {
            problems.push((
                path.clone(),
                format!("{} is not a regular file", path.display()),
            ));
        }
    }
    Ok(())
}

/// A rules file's text and the name to show in diagnostics.
pub struct RulesSource {
    pub display: String,
    pub text: String,
    pub builtin: bool,
}

impl Assets {
    /// Names of every target: built-in and from the operator's rules directory.
    pub fn target_names(&self) -> io::Result<BTreeSet<String>> {
        let mut names: BTreeSet<String> =
            RULES.files().filter_map(|f| toml_stem(f.path())).collect();
        if let Some(dir) = &self.rules_dir {
            for entry in fs::read_dir(dir)? {
                if let Some(stem) = toml_stem(&entry?.path()) {
                    names.insert(stem);
                }
            }
        }
        Ok(names)
    }

    /// Refuses an operator directory holding a symlink that leads outside it
    /// (or nowhere) or anything that is not a regular file or directory;
    /// returns one (path, message) per problem.
    pub fn check_operator_dirs(&self) -> Result<(), Vec<(PathBuf, String)>> {
        let mut problems = Vec::new();
        for dir in [&self.rules_dir, &self.templates_dir].into_iter().flatten() {
            if let Err(e) = check_tree(dir, dir, &mut problems) {
                problems.push((dir.clone(), format!("cannot list {}: {e}", dir.display())));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The rules file of a target, operator copy first.
    pub fn rules(&self, target: &str) -> io::Result<Option<RulesSource>> {
        let file = format!("{target}.toml");
        if let Some(dir) = &self.rules_dir {
            let path = dir.join(&file);
            let read = operator_file(dir, &file).and_then(|real| match real {
                Some(real) => fs::read_to_string(real),
                None => Err(io::ErrorKind::NotFound.into()),
            });
            match read {
                Ok(text) => {
                    return Ok(Some(RulesSource {
                        display: path.display().to_string(),
                        text,
                        builtin: false,
                    }))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(RULES.get_file(&file).map(|f| RulesSource {
            display: format!("rules/{file}"),
            text: f.contents_utf8().unwrap_or_default().to_owned(),
            builtin: true,
        }))
    }

    /// A template by loader name (`<target>/<file>`), operator copy first.
    /// Returns the text and the name to show in diagnostics.
    pub fn template(&self, name: &str) -> io::Result<Option<(String, String)>> {
        if name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            || name.contains('\\')
        {
            return Ok(None);
        }
        if let Some(dir) = &self.templates_dir {
            let path = dir.join(name);
            let read = operator_file(dir, name).and_then(|real| match real {
                Some(real) => fs::read_to_string(real),
                None => Err(io::ErrorKind::NotFound.into()),
            });
            match read {
                Ok(text) => return Ok(Some((text, path.display().to_string()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(TEMPLATES.get_file(name).map(|f| {
            (
                f.contents_utf8().unwrap_or_default().to_owned(),
                format!("templates/{name}"),
            )
        }))
    }

    /// Paths (relative to an eject directory) of every embedded file.
    pub fn embedded_paths() -> Vec<PathBuf> {
        embedded_files()
            .into_iter()
            .map(|(p, _)| PathBuf::from(p))
            .collect()
    }

    /// Writes the built-in `rules/` and `templates/` trees below `dir`.
    ///
    /// Nothing below `dir` is followed: a symlink where a directory or file
    /// would go is refused ([`UnsafePath`]) before anything is written, and
    /// each file is written to an exclusively created temporary file renamed
    /// into place, so even a link planted during the run is replaced, never
    /// written through. Existing regular files are overwritten (`init`
    /// refuses them first unless `--force`).
    pub fn eject(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let files = embedded_files();
        // Check every path first, so a refusal writes nothing.
        for (rel, _) in &files {
            let mut at = dir.to_path_buf();
            let parts: Vec<&str> = rel.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                at.push(part);
                let last = i + 1 == parts.len();
                match fs::symlink_metadata(&at) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e),
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(UnsafePath::error(format!(
                            "{} is a symlink; init --eject writes only real files and directories below {}",
                            at.display(),
                            dir.display()
                        )))
                    }
                    Ok(m) if !last && !m.is_dir() || last && !m.is_file() => {
                        return Err(UnsafePath::error(format!(
                            "{} exists and is not a {}",
                            at.display(),
                            if last { "regular file" } else { "directory" }
                        )))
                    }
                    Ok(_) => {}
                }
            }
        }
        // DIR itself is the operator's choice, link or not.
        fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for (rel, contents) in files {
            let path = dir.join(&rel);
            let mut at = dir.to_path_buf();
            for part in rel
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map_or(&[][..], |(_, d)| d)
            {
                at.push(part);
                match fs::create_dir(&at) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !fs::symlink_metadata(&at)?.is_dir() {
                            return Err(UnsafePath::error(format!(
                                "{} is not a directory",
                                at.display()
                            )));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            crate::batch::write_whole(&path, contents)?;
            written.push(path);
        }
        Ok(written)
    }
}

fn toml_stem(path: &Path) -> Option<String> {
    (path.extension()? == "toml")
        .then(|| path.file_stem()?.to_str().map(str::to_owned))
        .flatten()
}

/// Every embedded file as (path under the repository root, contents), for the
/// test that keeps the embedded trees identical to the files on disk.
pub fn embedded_files() -> Vec<(String, &'static [u8])> {
    let mut out = Vec::new();
    fn walk(prefix: &str, dir: &'static Dir<'static>, out: &mut Vec<(String, &'static [u8])>) {
        for f in dir.files() {
            out.push((format!("{prefix}/{}", f.path().display()), f.contents()));
        }
        for d in dir.dirs() {
            walk(prefix, d, out);
        }
    }
    walk("rules", &RULES, &mut out);
    walk("templates", &TEMPLATES, &mut out);
    out.sort();
    out
}
