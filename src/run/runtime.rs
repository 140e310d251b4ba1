//! Launcher grants: what the program's own runtime needs to start, found on
//! the host from the command line and added by `capgate run` (never by the
//! manifest): the resolved executable, a `#!` interpreter, a Python venv and
//! its base interpreter's prefix, a Node package behind a `bin` symlink.
//!
//! Every grant is read-only (`--ro-bind`) or a symlink, so none can widen a
//! declared write; a grant that would expose `/`, a top-level directory or a
//! home directory is refused instead (docs/run.md "Launcher grants").

use std::path::{Component, Path, PathBuf};

use crate::diag::{Code, Diagnostic};

/// Host directories the bwrap baseline already binds read-only: a path
/// under one of them needs no grant.
pub const BASELINE: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
];

/// Commands that download the server at start (they need the registry and
/// writable caches, which a sandbox does not give).
const DOWNLOADERS: &[&str] = &["npx", "uvx", "bunx", "pipx", "pnpx"];

/// One launcher grant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grant {
    /// `ro-bind` (path bound read-only at the same place) or `symlink`.
    pub kind: &'static str,
    pub path: PathBuf,
    /// For a symlink: its target, exactly as the host link holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    /// Why the run adds it.
    pub why: String,
}

impl Grant {
    /// The bwrap arguments of the grant.
    pub fn bwrap_args(&self) -> Vec<std::ffi::OsString> {
        match self.kind {
            "symlink" => vec![
                "--symlink".into(),
                self.target.clone().unwrap_or_default().into(),
                self.path.clone().into(),
            ],
            _ => vec![
                "--ro-bind".into(),
                self.path.clone().into(),
                self.path.clone().into(),
            ],
        }
    }
}

/// Refuses `npx -y pkg`, `uvx pkg`, `npm exec`, `pnpm dlx`, `uv tool run`, ...
pub fn check_downloader(command: &[std::ffi::OsString]) -> Result<(), Diagnostic> {
    let name = |i: usize| -> String {
        command
            .get(i)
            .map(|a| {
                Path::new(a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    let word = |i: usize| -> String {
        command
            .get(i)
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let first = name(0);
    let downloads = DOWNLOADERS.contains(&first.as_str())
        || (first == "npm" && matches!(word(1).as_str(), "exec" | "x"))
        || (matches!(first.as_str(), "pnpm" | "yarn") && word(1) == "dlx")
        || (first == "bun" && word(1) == "x")
        || (first == "uv" && word(1) == "tool" && word(2) == "run");
    if downloads {
        return Err(Diagnostic::new(
            Code::RunDownloader,
            format!(
                "`{first}` downloads the server when it starts, which the sandbox cannot allow (no registry, no writable cache)"
            ),
        )
        .with_help(
            "install the server first and run the installed entry point, e.g. `npm install -g PKG` then `capgate run M.json -- /usr/bin/node /usr/lib/node_modules/PKG/dist/index.js`, or `python3 -m venv /opt/srv && /opt/srv/bin/pip install PKG` then `capgate run M.json -- /opt/srv/bin/PKG` (docs/run.md)",
        ));
    }
    Ok(())
}

/// `name` looked up in `path` (a `PATH` value); a name with a `/` is taken
/// relative to the current directory.
pub fn resolve(name: &Path, path: &str) -> Option<PathBuf> {
    if name.as_os_str().is_empty() {
        return None;
    }
    if name.components().count() > 1 || name.to_string_lossy().contains('/') {
        let abs = if name.is_absolute() {
            name.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(name)
        };
        return is_executable(&abs).then(|| lexical(&abs));
    }
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `.` and `..` removed without following symlinks (`a/b/../c` → `a/c`).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Whether `p` is `dir` or below it.
pub fn under(p: &Path, dir: &Path) -> bool {
    p.starts_with(dir)
}

/// Collects the grants for one command line.
pub struct Finder<'a> {
    /// PATH inside the sandbox (the bwrap `path` option): where `#!/usr/bin/env X` looks.
    pub sandbox_path: &'a str,
    /// Paths the run binds anyway (baseline); nothing under them is granted.
    pub covered: Vec<PathBuf>,
    /// Paths the manifest binds writable: a file there is reachable, but what
    /// it says (`#!` line, `pyvenv.cfg`, a link's target, a package) is the
    /// server's to rewrite, so it never decides a grant.
    pub writable: Vec<PathBuf>,
    /// Files in a writable path whose runtime was not followed, for a warning.
    pub unfollowed: Vec<PathBuf>,
    pub grants: Vec<Grant>,
    depth: usize,
}

impl<'a> Finder<'a> {
    pub fn new(sandbox_path: &'a str) -> Finder<'a> {
        Finder {
            sandbox_path,
            covered: BASELINE.iter().map(PathBuf::from).collect(),
            writable: Vec::new(),
            unfollowed: Vec::new(),
            grants: Vec::new(),
            depth: 0,
        }
    }

    fn is_covered(&self, p: &Path) -> bool {
        self.covered.iter().any(|c| under(p, c))
            || self
                .grants
                .iter()
                .any(|g| g.kind == "ro-bind" && under(p, &g.path))
    }

    fn add_bind(&mut self, p: &Path, why: String) -> Result<(), Diagnostic> {
        if self.is_covered(p) {
            return Ok(());
        }
        check_narrow(p)?;
        // A new directory grant replaces the grants below it.
        self.grants
            .retain(|g| !(g.kind == "ro-bind" && under(&g.path, p) && g.path != p));
        self.grants.push(Grant {
            kind: "ro-bind",
            path: p.to_path_buf(),
            target: None,
            why,
        });
        Ok(())
    }

    /// The command (already resolved to an absolute path) and its arguments.
    pub fn command(&mut self, exe: &Path, args: &[std::ffi::OsString]) -> Result<(), Diagnostic> {
        self.file(exe, "the command")?;
        // `node SCRIPT`, `python3 SCRIPT`: the script and its package or venv.
        let base = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_interpreter(&base) {
            if let Some(script) = args.iter().find(|a| !a.to_string_lossy().starts_with('-')) {
                let p = Path::new(script);
                if p.is_absolute() && p.is_file() {
                    self.file(&lexical(p), &format!("the script run by {base}"))?;
                }
            }
        }
        Ok(())
    }

    /// A file the sandbox must be able to run or read at its host path.
    fn file(&mut self, p: &Path, role: &str) -> Result<(), Diagnostic> {
        self.depth += 1;
        if self.depth > 16 {
            return Ok(());
        }
        // As written and by real path (a link into the writable tree counts).
        let real = std::fs::canonicalize(p).ok();
        if self
            .writable
            .iter()
            .any(|w| under(p, w) || real.as_deref().is_some_and(|r| under(r, w)))
        {
            self.unfollowed.push(p.to_path_buf());
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(p).map_err(|e| {
            Diagnostic::new(
                Code::RunCommand,
                format!("{role} {} cannot be read: {e}", p.display()),
            )
        })?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(p).map_err(|e| {
                Diagnostic::new(
                    Code::RunCommand,
                    format!("{role} {} cannot be read: {e}", p.display()),
                )
            })?;
            if !self.is_covered(p) {
                check_narrow(p)?;
                self.grants.push(Grant {
                    kind: "symlink",
                    path: p.to_path_buf(),
                    target: Some(target.clone()),
                    why: format!("{role} (a symlink, recreated)"),
                });
            }
            let abs = lexical(&p.parent().unwrap_or(Path::new("/")).join(&target));
            return self.file(&abs, role);
        }
        // A Node package: the directory below node_modules (with its own
        // node_modules of dependencies).
        if let Some(pkg) = node_package(p) {
            self.add_bind(&pkg, format!("node package of {role} {}", p.display()))?;
        } else if let Some((venv, base)) = python_venv(p) {
            self.add_bind(&venv, format!("python venv of {role} {}", p.display()))?;
            if let Some(base) = base {
                self.add_bind(
                    &base,
                    format!("base interpreter prefix of the venv {}", venv.display()),
                )?;
            }
        } else {
            self.add_bind(p, role.to_owned())?;
        }
        self.shebang(p, role)
    }

    fn shebang(&mut self, p: &Path, role: &str) -> Result<(), Diagnostic> {
        let Some(line) = read_shebang(p) else {
            return Ok(());
        };
        let mut words = line.split_whitespace();
        let Some(interp) = words.next() else {
            return Ok(());
        };
        let interp = PathBuf::from(interp);
        let role = format!("the interpreter of {role} {}", p.display());
        if interp.file_name().is_some_and(|n| n == "env") {
            self.file(&interp, &role)?;
            let prog = words.find(|w| !w.starts_with('-'));
            if let Some(prog) = prog {
                if let Some(found) = resolve(Path::new(prog), self.sandbox_path) {
                    self.file(&found, &role)?;
                }
            }
            return Ok(());
        }
        if interp.is_absolute() {
            self.file(&interp, &role)?;
        }
        Ok(())
    }
}

fn is_interpreter(base: &str) -> bool {
    base == "node"
        || base == "nodejs"
        || base == "deno"
        || base == "bun"
        || base.starts_with("python")
}

/// The `#!` line of a file, if it has one.
fn read_shebang(p: &Path) -> Option<String> {
    use std::io::Read as _;
    let mut buf = [0u8; 256];
    let mut f = std::fs::File::open(p).ok()?;
    let n = f.read(&mut buf).ok()?;
    let rest = buf[..n].strip_prefix(b"#!")?;
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end])
        .ok()
        .map(|s| s.trim().to_owned())
}

/// `/x/node_modules/pkg/...` → `/x/node_modules/pkg`; `@scope/pkg` kept whole.
/// The last `node_modules` wins (a nested dependency's own package).
/// The outermost package is used: its node_modules holds the dependencies.
fn node_package(p: &Path) -> Option<PathBuf> {
    let parts: Vec<_> = p.components().collect();
    let i = parts.iter().position(|c| c.as_os_str() == "node_modules")?;
    let name = parts.get(i + 1)?;
    let mut end = i + 2;
    if name.as_os_str().to_string_lossy().starts_with('@') {
        end += 1;
    }
    if end > parts.len() - 1 {
        return None; // the path is the package directory itself, or a scope
    }
    let mut out = PathBuf::new();
    for c in &parts[..end] {
        out.push(c.as_os_str());
    }
    out.join("package.json").is_file().then_some(out)
}

/// A file in `VENV/bin/` with `VENV/pyvenv.cfg`: the venv and, from the
/// file's `home` key, the base interpreter's prefix (`home`'s parent).
fn python_venv(p: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    let bin = p.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let venv = bin.parent()?;
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    let home = cfg.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "home").then(|| PathBuf::from(v.trim()))
    });
    let base = home
        .filter(|h| h.is_absolute())
        .and_then(|h| h.parent().map(Path::to_path_buf));
    Some((venv.to_path_buf(), base))
}

/// Refuses a grant that would expose far more than a runtime: `/`, a
/// top-level directory, a home directory or an ancestor of one, /proc, /sys, /dev.
fn check_narrow(p: &Path) -> Result<(), Diagnostic> {
    let depth = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let top = p
        .components()
        .nth(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let home = (top == "home" && depth <= 2) || (top == "root" && depth <= 1);
    let reserved = matches!(top.as_str(), "proc" | "sys" | "dev");
    if depth < 2 || home || reserved {
        return Err(Diagnostic::new(
            Code::RunRuntimeGrant,
            format!(
                "the command's runtime would need {} readable in the sandbox, which exposes far more than a runtime",
                p.display()
            ),
        )
        .with_help(
            "install the server in its own directory (e.g. /opt/NAME), or declare exactly what it needs in the manifest (fs:read:/path/**)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloaders_are_refused() {
        for cmd in [
            &["npx", "-y", "@modelcontextprotocol/server-memory"][..],
            &["/usr/bin/npx", "pkg"],
            &["uvx", "mcp-server-time"],
            &["npm", "exec", "pkg"],
            &["pnpm", "dlx", "pkg"],
            &["uv", "tool", "run", "mcp-server-git"],
            &["bunx", "pkg"],
        ] {
            let c: Vec<std::ffi::OsString> = cmd.iter().map(Into::into).collect();
            let e = check_downloader(&c).expect_err(&format!("{cmd:?} accepted"));
            assert_eq!(e.code, Code::RunDownloader);
        }
        let ok: Vec<std::ffi::OsString> = ["npm", "--version"].iter().map(Into::into).collect();
        assert!(check_downloader(&ok).is_ok());
    }

    #[test]
    fn broad_grants_are_refused() {
        for p in [
            "/",
            "/opt",
            "/home",
            "/home/alice",
            "/root",
            "/proc/1",
            "/srv",
        ] {
            assert!(check_narrow(Path::new(p)).is_err(), "{p} accepted");
        }
        for p in [
            "/opt/venv",
            "/home/alice/.venvs/x",
            "/root/.pyenv/versions/3.11.7",
        ] {
            assert!(check_narrow(Path::new(p)).is_ok(), "{p} refused");
        }
    }

    #[test]
    fn lexical_removes_dots() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
    }
}
