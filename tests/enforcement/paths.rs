//! Paths, sockets and widening under the real bwrap: host aliases of reserved
//! paths and container-engine sockets (F5, F6), the X11 grant (G3) and the
//! note of a partial fs grant (F19). Every attack is first compiled; what is
//! accepted is run under bwrap and probed from inside, so a compiler that lets
//! an alias through fails here on what the sandbox actually reached.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use capgate::artifact::Artifact;
use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};

use crate::support::*;

/// The ONE place this module launches bwrap, as docs/cli.md documents it:
/// `LAUNCHER bwrap ARGV -- PROGRAM ARGS`, the launcher being the default bwrap
/// artifact's (env -i, setpriv drop to 65534, no groups or capabilities). The
/// launcher depends only on the launcher options, which these tests never set.
fn launch(argv: &[String], program: &[&str]) -> Output {
    let default = try_compile(&[], "bwrap", &[]).expect("an empty manifest compiles");
    let mut c = bwrap_command(&launcher(&default), argv);
    c.arg("--").args(program).env_clear();
    run(&mut c, Duration::from_secs(30))
}

/// Runs a python snippet inside the sandbox; returns its stdout.
fn inside(argv: &[String], script: &str) -> String {
    let out = launch(argv, &["/usr/bin/python3", "-c", script]);
    String::from_utf8_lossy(&out.stdout).into_owned()
        + &format!(
            "\n[rc {} stderr {}]",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
}

/// A one-tool manifest.
fn manifest(caps: &[&str]) -> String {
    serde_json::json!({
        "name": "paths", "version": "1",
        "tools": [{ "name": "t", "capabilities": caps }]
    })
    .to_string()
}

/// Compiles through the library; `Err` holds the diagnostic codes.
fn try_compile(caps: &[&str], target: &str, set: &[(&str, &str)]) -> Result<Artifact, Vec<String>> {
    let compiler = Compiler::new(&Assets::default(), target).expect("target loads");
    let settings = Settings {
        permissive: false,
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    compiler
        .compile("paths.json", manifest(caps).as_bytes(), &settings)
        .map(|o| o.artifact)
        .map_err(|d| d.iter().map(|d| d.code.as_str().to_owned()).collect())
}

fn notes(a: &Artifact) -> Vec<String> {
    match a {
        Artifact::Argv(a) => a.notes.clone(),
        Artifact::Config(c) => c.notes.clone(),
    }
}

/// A unix socket server that answers every connection with `reply` and
/// counts connections; stopped and its socket removed on drop.
struct SockServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl SockServer {
    fn start(path: &Path, reply: &'static str) -> SockServer {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        chmod(path, 0o777);
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Ok((mut c, _)) = l.accept() {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut b = [0u8; 16];
                    let _ = c.read(&mut b);
                    let _ = c.write_all(reply.as_bytes());
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        SockServer {
            path: path.to_owned(),
            stop,
        }
    }
}

impl Drop for SockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A directory outside /tmp (e.g. below /run), removed on drop.
struct HostDir(PathBuf);

impl HostDir {
    fn new(path: PathBuf) -> HostDir {
        std::fs::create_dir_all(&path).unwrap();
        chmod(&path, 0o755);
        HostDir(path)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file in the host's /dev/shm, removed on drop.
struct ShmFile(PathBuf);

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Python: connect to each unix socket path and print `PATH=REPLY` or `PATH=!ERR`.
fn connect_script(paths: &[String]) -> String {
    format!(
        "import socket\nfor p in {paths:?}:\n    s=socket.socket(socket.AF_UNIX)\n    s.settimeout(2)\n    try:\n        s.connect(p); s.sendall(b'hi\\n'); print(p+'='+s.recv(64).decode().strip())\n    except OSError as e:\n        print(p+'=!'+type(e).__name__)\n"
    )
}

/// F6: aliases of reserved trees (`/run/shm` is the host's `/dev/shm`, `/etc/mtab`
/// is /proc) are refused like the trees themselves, through `fs:` and `ipc:`.
/// A spelling that compiles anyway is run: the test then reports what the
/// sandbox reached of the host's /dev/shm.
#[test]
fn paths_reserved_aliases_refused() {
    if !require("paths_reserved_aliases_refused", &["bwrap"], true) {
        return;
    }
    let name = unique();
    let secret = ShmFile(PathBuf::from(format!("/dev/shm/{name}-secret")));
    std::fs::write(&secret.0, "host-shm-secret\n").unwrap();
    chmod(&secret.0, 0o666);
    let planted = ShmFile(PathBuf::from(format!("/dev/shm/{name}-planted")));
    let mut c = Checks::new();
    let cases: &[(&str, &str)] = &[
        ("fs:write:/run/shm", "CAP_FS_RESERVED"),
        ("fs:read:/run/shm/**", "CAP_FS_RESERVED"),
        (
            "fs:read,write,create,delete:/var/run/shm",
            "CAP_FS_RESERVED",
        ),
        ("fs:read:/run/shm/*", "CAP_FS_RESERVED"),
        ("fs:read:/etc/mtab", "CAP_FS_RESERVED"),
        ("ipc:connect:unix:/run/shm/x.sock", "CAP_IPC_SOCKET"),
        ("ipc:connect:unix:/var/run/shm/x.sock", "CAP_IPC_SOCKET"),
    ];
    for (cap, code) in cases {
        let _ = std::fs::remove_file(&planted.0);
        match try_compile(&[cap], "bwrap", &[]) {
            Err(codes) => c.eq(&format!("{cap} refused"), codes, vec![(*code).to_owned()]),
            Ok(a) => {
                let (argv, _) = argv(&a);
                let shm_alias = if cap.contains("/var/run/shm") {
                    "/var/run/shm"
                } else {
                    "/run/shm"
                };
                let script = format!(
                    "import os\nfor p in ['{shm_alias}/{name}-secret', '/etc/mtab']:\n    try: print(p, open(p).read()[:40].strip())\n    except OSError as e: print(p, 'ERR', e.errno)\ntry:\n    open('{shm_alias}/{name}-planted','w').write('x'); print('PLANTED')\nexcept OSError as e: print('plant ERR', e.errno)\n"
                );
                let out = inside(&argv, &script);
                c.check(&format!("{cap} refused (compiled instead)"), false, || {
                    format!(
                        "sandbox saw: {out}; host file planted: {}",
                        planted.0.exists()
                    )
                });
            }
        }
    }
    c.finish("paths_reserved_aliases_refused");
}

/// F5: container-engine sockets and the directories that hold them are
/// refused through `fs:` as through `ipc:`, under every alias. A fake engine
/// socket in a fresh directory below /run stands in for docker/podman.
#[test]
fn paths_engine_sockets_refused() {
    if !require("paths_engine_sockets_refused", &["bwrap"], true) {
        return;
    }
    let tmp = TempDir::new("paths-engine");
    let engine_tmp = SockServer::start(&tmp.join("docker.sock"), "ENGINE-API");
    let rundir = HostDir::new(PathBuf::from(format!("/run/{}-engine", unique())));
    let engine_run = SockServer::start(&rundir.0.join("podman.sock"), "ENGINE-API");
    let tmp_sock = s(&engine_tmp.path);
    let run_sock = s(&engine_run.path);
    let var_run_sock = run_sock.replacen("/run/", "/var/run/", 1);
    let caps = [
        format!("fs:read:{tmp_sock}"),
        format!("fs:write:{tmp_sock}"),
        format!("fs:read:{}/containerd.sock.ttrpc", s(&tmp.path)),
        "ipc:connect:unix:/var/run".to_owned(),
        "fs:read:/var/run/docker.sock".to_owned(),
        "fs:read:/run".to_owned(),
        "fs:read:/var/run/**".to_owned(),
        "fs:read:/run/*".to_owned(),
        "fs:read:/run/containerd/**".to_owned(),
        "fs:read:/run/user/1000".to_owned(),
        "ipc:connect:unix:/run/podman".to_owned(),
        "ipc:connect:unix:/run/user/1000/podman/podman.sock".to_owned(),
        "ipc:connect:unix:/var/run/docker.sock".to_owned(),
        "ipc:connect:unix:/run/buildkit/buildkitd.sock".to_owned(),
        // V5: engines and state directories the first table missed.
        "ipc:connect:\"unix:/var/run/balena-engine.sock\"".to_owned(),
        "ipc:connect:unix:/var/run/balena.sock".to_owned(),
        format!("fs:read:{}/balena-engine.sock", s(&tmp.path)),
        "fs:read:/var/lib/balena-engine/**".to_owned(),
        "fs:read:/var/snap/docker/**".to_owned(),
        "fs:read:/run/k0s/**".to_owned(),
        "fs:read:/var/lib/rancher/**".to_owned(),
        "fs:read:/var/lib/kubelet/**".to_owned(),
        "fs:read:/var/lib/lxc/**".to_owned(),
        "fs:read:/var/lib/machines/**".to_owned(),
        "fs:read:/run/containers/**".to_owned(),
        "fs:read:/var/run/containers/0/auth.json".to_owned(),
        "fs:read:/home/u/.local/share/containers/**".to_owned(),
        "fs:write:/root/.local/share/docker".to_owned(),
        "fs:read:/run/runc/**".to_owned(),
        "fs:read:/run/crun/**".to_owned(),
        "fs:read:/run/user/1000/containers/auth.json".to_owned(),
        "ipc:connect:unix:/run/k0s/containerd.sock".to_owned(),
    ];
    let mut c = Checks::new();
    for cap in &caps {
        let code = if cap.starts_with("ipc:") {
            "CAP_IPC_SOCKET"
        } else {
            "CAP_FS_RESERVED"
        };
        match try_compile(&[cap], "bwrap", &[]) {
            Err(codes) => c.eq(&format!("{cap} refused"), codes, vec![code.to_owned()]),
            Ok(a) => {
                let (argv, _) = argv(&a);
                let out = inside(
                    &argv,
                    &connect_script(&[tmp_sock.clone(), run_sock.clone(), var_run_sock.clone()]),
                );
                c.check(&format!("{cap} refused (compiled instead)"), false, || {
                    format!("sandbox connects: {out}")
                });
            }
        }
    }
    // Control: the same socket under an ordinary name is granted and reachable,
    // so the refusals above are about the engine, and the probe can connect.
    let plain = SockServer::start(&tmp.join("app.sock"), "APP");
    let cap = format!("ipc:connect:unix:{}", s(&plain.path));
    match try_compile(&[&cap], "bwrap", &[]) {
        Ok(a) => {
            let (argv, _) = argv(&a);
            let out = inside(&argv, &connect_script(&[s(&plain.path), tmp_sock.clone()]));
            c.check(
                "control: an ordinary socket connects",
                out.contains(&format!("{}=APP", s(&plain.path))),
                || out.clone(),
            );
            c.check(
                "control: only that socket is bound",
                out.contains(&format!("{tmp_sock}=!")),
                || out.clone(),
            );
        }
        Err(codes) => c.check("control: ordinary socket compiles", false, || {
            format!("{codes:?}")
        }),
    }
    c.finish("paths_engine_sockets_refused");
}

/// F6, the accepted side: an alias that leads nowhere reserved
/// (`/var/lock` is `/run/lock`) binds exactly the declared path, not its
/// siblings, and read-only stays read-only.
#[test]
fn paths_accepted_alias_binds_exactly_the_declared_path() {
    if !require(
        "paths_accepted_alias_binds_exactly_the_declared_path",
        &["bwrap"],
        true,
    ) {
        return;
    }
    if !Path::new("/run/lock").is_dir() || std::fs::read_link("/var/lock").is_err() {
        skip(
            "paths_accepted_alias_binds_exactly_the_declared_path",
            "needs /var/lock to be a link to /run/lock on this host",
        );
        return;
    }
    let name = unique();
    let granted = HostDir::new(PathBuf::from(format!("/run/lock/{name}-a")));
    let sibling = HostDir::new(PathBuf::from(format!("/run/lock/{name}-b")));
    std::fs::write(granted.0.join("f"), "granted\n").unwrap();
    std::fs::write(sibling.0.join("f"), "sibling\n").unwrap();
    let a = try_compile(&[&format!("fs:read:/var/lock/{name}-a")], "bwrap", &[])
        .unwrap_or_else(|e| panic!("fs:read:/var/lock/... refused: {e:?}"));
    let (argv, _) = argv(&a);
    let script = format!(
        "import os\nfor p in ['/var/lock/{name}-a/f','/var/lock/{name}-b/f','/run/lock/{name}-b/f','/run/lock/{name}-a/f']:\n    try: print(p+'='+open(p).read().strip())\n    except OSError as e: print(p+'=!'+str(e.errno))\ntry:\n    open('/var/lock/{name}-a/new','w').write('x'); print('WROTE')\nexcept OSError as e: print('write=!'+str(e.errno))\n"
    );
    let out = inside(&argv, &script);
    let mut c = Checks::new();
    c.check(
        "declared path readable",
        out.contains(&format!("/var/lock/{name}-a/f=granted")),
        || out.clone(),
    );
    c.check(
        "sibling invisible through the alias",
        out.contains(&format!("/var/lock/{name}-b/f=!")),
        || out.clone(),
    );
    c.check(
        "sibling invisible through the target",
        out.contains(&format!("/run/lock/{name}-b/f=!")),
        || out.clone(),
    );
    c.check(
        "read-only grant not writable",
        !out.contains("WROTE") && !granted.0.join("new").exists(),
        || out.clone(),
    );
    c.finish("paths_accepted_alias_binds_exactly_the_declared_path");
}

/// `argv` with every bind source below /tmp/.X11-unix moved to `root/.X11-unix`
/// (destinations unchanged), so the test never touches the host's real X11 dir.
fn relocate_x11(argv: &[String], root: &Path) -> (Vec<String>, usize) {
    let mut out = argv.to_vec();
    let mut moved = 0;
    for i in 0..out.len().saturating_sub(2) {
        let bind = matches!(
            out[i].as_str(),
            "--ro-bind" | "--ro-bind-try" | "--bind" | "--bind-try"
        );
        if bind && tree(&out[i + 1], "/tmp/.X11-unix") {
            out[i + 1] = format!("{}{}", s(root), &out[i + 1]["/tmp".len()..]);
            moved += 1;
        }
    }
    (out, moved)
}

fn tree(path: &str, top: &str) -> bool {
    path == top || path.starts_with(&format!("{top}/"))
}

/// G3: `ipc:connect:x11` reaches the one display it is compiled for
/// (option `x11_display`, default 0), not every display on the host.
#[test]
fn paths_x11_binds_one_display() {
    if !require("paths_x11_binds_one_display", &["bwrap"], true) {
        return;
    }
    let root = TempDir::new("paths-x11");
    root.dir(".X11-unix", 0o1777);
    let x0 = SockServer::start(&root.join(".X11-unix/X0"), "display-X0");
    let x1 = SockServer::start(&root.join(".X11-unix/X1"), "OTHER-display-X1");
    let x7 = SockServer::start(&root.join(".X11-unix/X7"), "display-X7");
    let _ = (&x0, &x1, &x7);
    let probe = connect_script(&[
        "/tmp/.X11-unix/X0".into(),
        "/tmp/.X11-unix/X1".into(),
        "/tmp/.X11-unix/X7".into(),
    ]);
    let mut c = Checks::new();
    for (set, reach) in [(None, "X0"), (Some("1"), "X1"), (Some("7"), "X7")] {
        let opts: Vec<(&str, &str)> = set.map(|v| ("x11_display", v)).into_iter().collect();
        let a = match try_compile(&["ipc:connect:x11"], "bwrap", &opts) {
            Ok(a) => a,
            Err(e) => {
                c.check(&format!("x11 compiles with {opts:?}"), false, || {
                    format!("{e:?}")
                });
                continue;
            }
        };
        let (argv, injections) = argv(&a);
        c.eq(
            &format!("{opts:?}: DISPLAY injected"),
            injections,
            vec!["DISPLAY".to_owned()],
        );
        let (argv, moved) = relocate_x11(&argv, &root.path);
        c.check(&format!("{opts:?}: x11 bind found"), moved > 0, || {
            format!("{argv:?}")
        });
        let out = inside(&argv, &probe);
        for d in ["X0", "X1", "X7"] {
            let reached = out
                .lines()
                .any(|l| l.starts_with(&format!("/tmp/.X11-unix/{d}=")) && !l.contains("=!"));
            c.eq(&format!("{opts:?}: {d} reachable"), reached, d == reach);
        }
    }
    // Other spellings: the socket directory as a unix endpoint (every display)
    // is refused; one display's socket named as a unix endpoint reaches only it.
    // V4: the same directory through fs: (bound read-only, its sockets still
    // connect) is refused too; one socket file through fs: is one display.
    for (cap, reach) in [
        ("ipc:connect:unix:/tmp/.X11-unix", None),
        ("ipc:connect:\"unix:/tmp/.X11-unix\"", None),
        ("ipc:connect:unix:/tmp/.X11-unix/X1", Some("X1")),
        ("fs:read:/tmp/.X11-unix", None),
        ("fs:read:/tmp/.X11-unix/**", None),
        ("fs:read:/tmp/.X11-unix/*", None),
        ("fs:read,write,create,delete:/tmp/.X11-unix", None),
        ("fs:read:\"/tmp/.X11-unix\"", None),
        ("fs:read:/tmp/.X11-unix/X1", Some("X1")),
    ] {
        match (try_compile(&[cap], "bwrap", &[]), reach) {
            (Err(codes), None) => c.eq(
                &format!("{cap} refused"),
                codes,
                vec![if cap.starts_with("fs:") {
                    "CAP_FS_RESERVED"
                } else {
                    "CAP_IPC_SOCKET"
                }
                .to_owned()],
            ),
            (Err(codes), Some(_)) => {
                c.check(&format!("{cap} compiles"), false, || format!("{codes:?}"))
            }
            (Ok(a), _) => {
                let (argv, _) = argv(&a);
                let (argv, _) = relocate_x11(&argv, &root.path);
                let out = inside(&argv, &probe);
                for d in ["X0", "X1", "X7"] {
                    let reached = out.lines().any(|l| {
                        l.starts_with(&format!("/tmp/.X11-unix/{d}=")) && !l.contains("=!")
                    });
                    c.eq(&format!("{cap}: {d} reachable"), reached, reach == Some(d));
                }
            }
        }
    }
    // Out-of-range display numbers are option errors, not a bind of something else.
    for bad in ["-1", "x", "0/../X1", "100000"] {
        c.check(
            &format!("x11_display={bad} refused"),
            try_compile(&["ipc:connect:x11"], "bwrap", &[("x11_display", bad)]).is_err(),
            String::new,
        );
    }
    c.finish("paths_x11_binds_one_display");
}

/// F19: `fs:write` without `create`/`delete` (and create or delete alone)
/// becomes a read-write bind: the artifact says so in a note that names the
/// path and what it allows beyond the declaration, and bwrap behaves as the
/// note says (the sandbox creates and deletes files there).
#[test]
fn paths_partial_write_is_noted_and_behaves_as_noted() {
    if !require(
        "paths_partial_write_is_noted_and_behaves_as_noted",
        &["bwrap"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("paths-partial");
    let mut c = Checks::new();
    for (actions, widened) in [
        ("write", &["create", "delete"][..]),
        ("create", &["write", "delete"][..]),
        ("delete", &["create"][..]),
        ("write,create", &["delete"][..]),
        ("read,write,create,delete", &[][..]),
    ] {
        let dir = root.dir(&actions.replace(',', "-"), 0o777);
        root.file(
            &format!("{}/existing", actions.replace(',', "-")),
            "keep\n",
            0o666,
        );
        let cap = format!("fs:{actions}:{}", s(&dir));
        for target in ["bwrap", "docker"] {
            let a = try_compile(&[&cap], target, &[]).expect("compiles");
            let n = notes(&a);
            // The widening note (not the shared-launcher-uid note of V8, which names the path too).
            let note = n
                .iter()
                .find(|n| n.contains(&format!("\"{}\"", s(&dir))) && !n.contains("launcher_uid"));
            if widened.is_empty() {
                c.check(
                    &format!("{target} {cap}: no widening note"),
                    note.is_none(),
                    || format!("{n:?}"),
                );
            } else {
                c.check(
                    &format!("{target} {cap}: note names the path and the widened actions"),
                    note.is_some_and(|n| {
                        widened.iter().all(|w| n.contains(w))
                            && n.contains(actions.split(',').next().unwrap())
                    }),
                    || format!("{n:?}"),
                );
            }
        }
        let a = try_compile(&[&cap], "bwrap", &[]).unwrap();
        let (argv, _) = argv(&a);
        let d = s(&dir);
        let out = inside(
            &argv,
            &format!("import os\ntry:\n    open('{d}/created','w').write('x'); print('CREATED')\nexcept OSError as e: print('create=!'+str(e.errno))\ntry:\n    os.remove('{d}/existing'); print('DELETED')\nexcept OSError as e: print('delete=!'+str(e.errno))\n"),
        );
        // A bind mount cannot separate the three: all of them work, as the note says.
        c.check(
            &format!("bwrap {cap}: create works"),
            out.contains("CREATED") && dir.join("created").exists(),
            || out.clone(),
        );
        c.check(
            &format!("bwrap {cap}: delete works"),
            out.contains("DELETED") && !dir.join("existing").exists(),
            || out.clone(),
        );
    }
    c.finish("paths_partial_write_is_noted_and_behaves_as_noted");
}
