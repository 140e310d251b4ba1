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

    /// The rules file of a target, operator copy first.
    pub fn rules(&self, target: &str) -> io::Result<Option<RulesSource>> {
        let file = format!("{target}.toml");
        if let Some(dir) = &self.rules_dir {
            let path = dir.join(&file);
            match fs::read_to_string(&path) {
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
            match fs::read_to_string(&path) {
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
    pub fn eject(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (root, tree) in [("rules", &RULES), ("templates", &TEMPLATES)] {
            write_tree(&dir.join(root), tree, &mut written)?;
        }
        Ok(written)
    }
}

fn write_tree(base: &Path, dir: &Dir<'_>, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for file in dir.files() {
        let path = base.join(file.path());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, file.contents())?;
        written.push(path);
    }
    for sub in dir.dirs() {
        write_tree(base, sub, written)?;
    }
    Ok(())
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
