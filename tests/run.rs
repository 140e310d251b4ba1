//! `capgate run` under the real tools (bwrap, setpriv; podman for the docker
//! target), as root as CI runs it: stdio passthrough, exit status and
//! signals, SIGKILL cleanup, the sandbox's host uid, the environment, launcher
//! grants, clock:tzdata, and the one-line errors. A missing tool skips loudly,
//! or fails under `CI=true`. The real MCP servers are in tests/run_servers.rs.

#[path = "run/support.rs"]
mod support;

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

const BASE: &[&str] = &["bwrap", "setpriv", "env"];

fn empty(dir: &TempDir) -> std::path::PathBuf {
    dir.manifest("empty", &[])
}

/// stderr with the test's directory replaced, for snapshots.
fn norm(stderr: &[u8], dir: &TempDir) -> String {
    text(stderr).replace(&dir.path.display().to_string(), "[DIR]")
}

// ------------------------------------------------------------------ stdio

#[test]
fn stdio_passes_through_byte_for_byte() {
    if !require_tools("stdio_passes_through_byte_for_byte", BASE) {
        return;
    }
    let dir = TempDir::new("stdio");
    let m = empty(&dir);
    // Every byte value, NULs and invalid UTF-8, more than a pipe buffer.
    let input: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    for (label, script) in [("stdout", "cat"), ("stderr", "cat >&2")] {
        let mut child = capgate()
            .arg("run")
            .arg(&m)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let writer = std::thread::spawn(move || {
            stdin.write_all(&data).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(
            out.status.success(),
            "{label}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        let (got, other) = if label == "stdout" {
            (&out.stdout, &out.stderr)
        } else {
            (&out.stderr, &out.stdout)
        };
        assert_eq!(got.len(), input.len(), "{label}: length");
        assert!(*got == input, "{label}: bytes differ");
        assert!(
            other.is_empty(),
            "{label}: other stream not empty: {}",
            text(other)
        );
    }
}

#[test]
fn interactive_request_response_over_stdio() {
    // An MCP server answers line by line while stdin stays open: no buffering
    // in between, no EOF needed.
    if !require_tools("interactive_request_response_over_stdio", BASE) {
        return;
    }
    let dir = TempDir::new("interactive");
    let m = empty(&dir);
    let mut child = capgate()
        .arg("run")
        .arg(&m)
        .args(["--", "sh", "-c", "while read l; do echo \"got $l\"; done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    for i in 0..3 {
        writeln!(stdin, "ping{i}").unwrap();
        stdin.flush().unwrap();
        let mut buf = vec![0u8; 64];
        let n = stdout.read(&mut buf).unwrap();
        assert_eq!(text(&buf[..n]), format!("got ping{i}\n"));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

// ------------------------------------------------------------ exit, signals

#[test]
fn exit_status_comes_back() {
    if !require_tools("exit_status_comes_back", BASE) {
        return;
    }
    let dir = TempDir::new("exit");
    let m = empty(&dir);
    for code in [0, 1, 3, 4, 42, 125, 255] {
        let out = run(&m, &[], &["sh", "-c", &format!("exit {code}")]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "exit {code}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn signal_death_comes_back() {
    if !require_tools("signal_death_comes_back", BASE) {
        return;
    }
    let dir = TempDir::new("sig");
    let m = empty(&dir);
    // The server killed by a signal inside: 128+signal, as a shell reports it.
    for (sig, num) in [("TERM", 15), ("KILL", 9), ("SEGV", 11)] {
        let out = run(&m, &[], &["sh", "-c", &format!("kill -{sig} $$")]);
        let st = out.status;
        assert!(
            st.code() == Some(128 + num) || st.signal() == Some(num),
            "{sig}: {st:?}"
        );
    }
}

/// Starts `capgate run -- sh -c 'sleep 1000; : MARKER'` and waits until the
/// sandboxed sleep runs.
fn start_sleeper(m: &Path, marker: &str) -> Proc {
    let child = capgate()
        .arg("run")
        .arg(m)
        .args(["--", "sh", "-c", &format!("sleep 1000; : {marker}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    // Started means the command itself runs in the sandbox (bwrap has set
    // --die-with-parent by then), not only that bwrap forked: a SIGKILL in
    // between is bwrap's own start-up race, not what this test is about.
    let in_sandbox = |q: &u32| {
        fs::read(format!("/proc/{q}/cmdline")).is_ok_and(|c| {
            let mut args = c.split(|&b| b == 0);
            args.next().is_some_and(|a| a.ends_with(b"/sh")) && args.next() == Some(b"-c")
        })
    };
    assert!(
        wait_for(10, || pids_with(marker).iter().any(in_sandbox)),
        "sandboxed process did not start"
    );
    p
}

#[test]
fn sandbox_dies_with_its_launcher() {
    if !require_tools("sandbox_dies_with_its_launcher", BASE) {
        return;
    }
    let dir = TempDir::new("die");
    let m = empty(&dir);
    // SIGKILL (no handler can run), SIGTERM and SIGHUP (a client closing down)
    // of the process the client started: nothing of the sandbox survives.
    for sig in ["KILL", "TERM", "HUP", "INT"] {
        let marker = unique();
        let mut p = start_sleeper(&m, &marker);
        signal(p.0.id(), sig);
        let st = p.0.wait().unwrap();
        assert!(!st.success(), "{sig}: {st:?}");
        assert!(
            wait_for(5, || pids_with(&marker).is_empty()),
            "{sig}: left behind: {:?}",
            pids_with(&marker)
        );
    }
}

#[test]
fn closing_stdin_ends_a_stdio_server() {
    if !require_tools("closing_stdin_ends_a_stdio_server", BASE) {
        return;
    }
    let dir = TempDir::new("eof");
    let m = empty(&dir);
    let mut child = capgate()
        .arg("run")
        .arg(&m)
        .args(["--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    assert!(wait_for(5, || child.try_wait().unwrap().is_some()));
}

// ------------------------------------------------------------ never host root

#[test]
fn never_host_root() {
    if !require_tools("never_host_root", BASE) {
        return;
    }
    let dir = TempDir::new("uid");
    let data = dir.dir("data", 0o755);
    chown(&data, 65534, 65534);
    let m = dir.manifest(
        "uid",
        &[format!("fs:read,write,create:{}/**", data.display())],
    );
    // Default: host uid 65534 owns what the server creates.
    let out = run(
        &m,
        &[],
        &["sh", "-c", &format!("echo x > {}/a; id -u", data.display())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::metadata(data.join("a")).unwrap().uid(), 65534);
    // --user: that uid and gid.
    let d2 = dir.dir("data2", 0o755);
    chown(&d2, 4321, 4322);
    let m2 = dir.manifest(
        "uid2",
        &[format!("fs:read,write,create:{}/**", d2.display())],
    );
    let out = run(
        &m2,
        &["--user", "4321:4322"],
        &["sh", "-c", &format!("echo x > {}/b", d2.display())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = fs::metadata(d2.join("b")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    // A root-only file in a readable grant is not readable by the sandbox.
    let secret = dir.file("ro/secret", "TOP SECRET", 0o600);
    let m3 = dir.manifest(
        "uid3",
        &[format!("fs:read:{}/**", secret.parent().unwrap().display())],
    );
    let out = run(&m3, &[], &["cat", &secret.display().to_string()]);
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("TOP SECRET"));
}

/// The launcher's tools run outside the sandbox, as the caller: a directory
/// on the caller's PATH that the manifest declares writable (`~/.local/bin`)
/// must not supply them, or the server plants `env`, `bwrap`, `setpriv` or
/// `nsenter` there and the next run starts it unconfined. Every tool is
/// planted, first on PATH, and none may run.
#[test]
fn launcher_tools_never_come_from_the_callers_path() {
    if !require_tools("launcher_tools_never_come_from_the_callers_path", BASE) {
        return;
    }
    let dir = TempDir::new("toolpath");
    let bin = dir.dir("home/.local/bin", 0o755);
    let marker = dir.join("planted-ran");
    for tool in [
        "env", "bwrap", "setpriv", "nsenter", "ip", "nft", "squid", "podman", "docker",
    ] {
        dir.file(
            &format!("home/.local/bin/{tool}"),
            &format!("#!/bin/sh\necho {tool} >> {}\nexit 97\n", marker.display()),
            0o755,
        );
    }
    chown(&bin, 4321, 4321);
    let m = dir.manifest(
        "toolpath",
        &[format!("fs:read,write,create,delete:{}/**", bin.display())],
    );
    // With net, the run also sets up a namespace, nftables and squid.
    let with_net = dir.manifest(
        "toolpath-net",
        &[
            format!("fs:read,write,create,delete:{}/**", bin.display()),
            "net:connect:api.github.com:443".to_owned(),
        ],
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // `capgate run M --target T ... -- /bin/echo inside` with one variable set;
    // none of the planted tools may have run.
    let run_with = |m: &Path, target: &str, var: (&str, &str)| {
        let out = capgate()
            .args(["run"])
            .arg(m)
            .args(["--target", target, "--image", "localhost/none"])
            .args(["--user", "4321:4321", "--", "/bin/echo", "inside"])
            .env(var.0, var.1)
            .stdin(Stdio::null())
            .output()
            .expect("capgate runs");
        let planted = fs::read_to_string(&marker).unwrap_or_default();
        assert!(
            planted.is_empty(),
            "planted tools ran outside the sandbox: {planted}"
        );
        out
    };
    for m in [&m, &with_net] {
        let out = run_with(m, "bwrap", ("PATH", &path));
        assert!(
            out.status.success(),
            "{}: {}",
            m.display(),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "inside\n");
    }
    // A writable grant of a directory tools or capgate itself come from is
    // refused, whatever it holds now: the tool directories the operator
    // chose, and capgate's own directory; for --target docker too.
    let exe_dir = Path::new(env!("CARGO_BIN_EXE_capgate")).parent().unwrap();
    let of_exe = dir.manifest(
        "toolpath-exe",
        &[format!(
            "fs:read,write,create,delete:{}/**",
            exe_dir.display()
        )],
    );
    let tool_path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    for (m, target) in [(&m, "bwrap"), (&m, "docker"), (&of_exe, "bwrap")] {
        let out = run_with(m, target, ("CAPGATE_TOOL_PATH", &tool_path));
        let err = text(&out.stderr);
        assert!(
            !out.status.success()
                && err.starts_with("capgate: RUN_START: the manifest declares ")
                && err.contains("where capgate run takes the programs it runs outside the sandbox"),
            "{target} {}: {err}",
            m.display()
        );
        assert!(out.stdout.is_empty());
    }
}

/// What a file in a writable grant says about its runtime is the server's to
/// rewrite: a venv's `pyvenv.cfg` there names no base interpreter for the
/// next run. The server rewrites `home` to a secret directory in the first
/// run; the second must neither grant nor show it.
#[test]
fn a_writable_venv_names_no_grant_for_the_next_run() {
    if !require_tools("a_writable_venv_names_no_grant_for_the_next_run", BASE) {
        return;
    }
    let dir = TempDir::new("venvw");
    dir.file("secret/bin/python3", "", 0o755);
    dir.file("secret/key", "TOP SECRET", 0o644);
    let venv = dir.dir("venv", 0o777);
    dir.file("venv/pyvenv.cfg", "home = /usr/bin\n", 0o666);
    let script = format!(
        "#!/bin/sh\ncat {key} 2>/dev/null || echo no-secret\necho 'home = {home}' > {cfg}\n",
        key = dir.join("secret/key").display(),
        home = dir.join("secret/bin").display(),
        cfg = venv.join("pyvenv.cfg").display(),
    );
    let srv = dir.file("venv/bin/srv", &script, 0o755);
    chown(&venv, 65534, 65534);
    chown(&venv.join("pyvenv.cfg"), 65534, 65534);
    let m = dir.manifest(
        "venvw",
        &[format!("fs:read,write,create,delete:{}/**", venv.display())],
    );
    let mut warnings = Vec::new();
    for round in ["first", "second"] {
        let out = run(&m, &[], &[&srv.display().to_string()]);
        let stdout = text(&out.stdout);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{round}: {err}");
        assert_eq!(stdout, "no-secret\n", "{round}: {err}");
        assert!(!err.contains("base interpreter prefix"), "{round}: {err}");
        warnings.push(err);
    }
    assert!(
        warnings.iter().all(|e| e.contains("is not followed")),
        "{warnings:?}"
    );
    assert!(fs::read_to_string(venv.join("pyvenv.cfg"))
        .unwrap()
        .contains("secret/bin"));
}

#[test]
fn host_root_is_refused_in_every_spelling() {
    if !require_tools("host_root_is_refused_in_every_spelling", BASE) {
        return;
    }
    let dir = TempDir::new("root");
    let m = empty(&dir);
    for flags in [
        &["--user", "0"][..],
        &["--user", "0:0"],
        &["--user", "00"],
        &["--user", "1000:0"],
        &["--user", "root"],
        &["--set", "root_launcher=false"],
        &["--set", "launcher_uid=0"],
    ] {
        let out = run(&m, flags, &["id", "-u"]);
        assert!(
            !out.status.success(),
            "{flags:?} ran: {}",
            text(&out.stdout)
        );
        assert!(
            out.stdout.is_empty(),
            "{flags:?}: stdout {}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        assert!(err.starts_with("capgate: "), "{flags:?}: {err}");
    }
    let out = run(&m, &["--user", "0"], &["id", "-u"]);
    insta::assert_snapshot!("run_user_root", norm(&out.stderr, &dir));
}

#[test]
fn writable_grant_not_writable_by_the_sandbox_user_is_a_warning() {
    if !require_tools(
        "writable_grant_not_writable_by_the_sandbox_user_is_a_warning",
        BASE,
    ) {
        return;
    }
    let dir = TempDir::new("warnw");
    let data = dir.dir("rootowned", 0o755);
    let m = dir.manifest("w", &[format!("fs:read,write:{}/**", data.display())]);
    let out = run(
        &m,
        &[],
        &["sh", "-c", &format!("echo x > {}/f", data.display())],
    );
    let err = text(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("capgate: warning: writable grant"),
        "{err}"
    );
    assert!(first.contains(&data.display().to_string()), "{err}");
    assert!(
        first.contains(&format!("chown -R 65534:65534 {}", data.display())),
        "{err}"
    );
    // And it really is not writable: the warning is true.
    assert!(!out.status.success());
    assert!(!data.join("f").exists());
    // Owned by another user: the fix names --user OWNER.
    chown(&data, 2345, 2346);
    let out = run(&m, &[], &["true"]);
    assert!(
        text(&out.stderr).contains("--user 2345:2346"),
        "{}",
        text(&out.stderr)
    );
    // Group-writable for the sandbox's gid, or other-writable: no warning.
    chown(&data, 2345, 65534);
    chmod(&data, 0o775);
    let out = run(&m, &[], &["true"]);
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    chown(&data, 2345, 2346);
    chmod(&data, 0o777);
    let out = run(&m, &[], &["true"]);
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

// ------------------------------------------------------------ environment

#[test]
fn environment_is_exactly_the_declared_names() {
    if !require_tools("environment_is_exactly_the_declared_names", BASE) {
        return;
    }
    let dir = TempDir::new("env");
    let m = dir.manifest(
        "env",
        &[
            "env:read:CG_DECLARED".into(),
            "env:inject:CG_TOKEN".into(),
            "env:read:CG_MISSING".into(),
        ],
    );
    let out = capgate()
        .arg("run")
        .arg(&m)
        .args([
            "--",
            "sh",
            "-c",
            "env; echo ---; tr '\\0' '\\n' < /proc/1/environ",
        ])
        .env("CG_DECLARED", "value with spaces\tand tab")
        .env("CG_TOKEN", "tok-123")
        .env("CG_UNDECLARED", "undeclared-secret")
        .env_remove("CG_MISSING")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    let (server_env, pid1_env) = o.split_once("---\n").unwrap();
    assert!(
        server_env.contains("CG_DECLARED=value with spaces\tand tab\n"),
        "{o}"
    );
    assert!(server_env.contains("CG_TOKEN=tok-123\n"), "{o}");
    for absent in ["CG_UNDECLARED", "undeclared-secret", "CG_MISSING"] {
        assert!(!o.contains(absent), "{absent} inside: {o}");
    }
    // bwrap's pid 1 (the reaper) holds none of the launcher's variables.
    assert!(
        !pid1_env.contains("tok-123") && !pid1_env.contains("CG_"),
        "pid 1: {pid1_env}"
    );
    let names: Vec<&str> = server_env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect();
    for n in &names {
        assert!(
            [
                "CG_DECLARED",
                "CG_TOKEN",
                "PATH",
                "HOME",
                "PWD",
                "SHLVL",
                "_"
            ]
            .contains(n),
            "undeclared variable {n} inside: {o}"
        );
    }
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("capgate: warning: ") && l.contains("CG_MISSING")),
        "{err}"
    );
}

// ------------------------------------------------------------ launcher grants

/// V1/V2 of the re-review: an MCP client that leaves an fd open (here a
/// root-only file at fd 9) or holds a key in its session keyring must not hand
/// either to the sandbox: `capgate run` closes every fd above 2 at exec and
/// joins a new session keyring before it executes the launcher.
#[test]
fn client_fds_and_keyring_do_not_reach_the_sandbox() {
    use std::os::unix::process::CommandExt as _;
    if !require_tools("client_fds_and_keyring_do_not_reach_the_sandbox", BASE) {
        return;
    }
    let dir = TempDir::new("fds");
    let secret = dir.path.join("root-only");
    fs::write(&secret, "client-fd-secret\n").unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let secret_c = std::ffi::CString::new(secret.as_os_str().as_encoded_bytes()).unwrap();
    let m = empty(&dir);
    let mut cmd = capgate();
    cmd.arg("run").arg(&m).args([
        "--",
        "sh",
        "-c",
        "ls /proc/self/fd | tr '\\n' ' '; echo; /usr/bin/python3 -c \"$0\"; echo ---; cat <&9",
        // request_key(2) then KEYCTL_READ (x86_64 numbers, as CI runs): finds
        // the key only through an inherited session keyring.
        "import ctypes; l = ctypes.CDLL(None); b = ctypes.create_string_buffer(64); \
         k = l.syscall(249, b'user', b'capgate-run-secret', None, 0); \
         n = l.syscall(250, 11, k, b, 64) if k > 0 else -1; \
         print('KEY', k, b.value.decode() if n > 0 else '')",
    ]);
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A keyring of this child's own (the test runner's stays untouched)
            // holding a key, as a client's session keyring would.
            libc::syscall(
                libc::SYS_keyctl,
                1 as libc::c_long,
                std::ptr::null::<libc::c_char>(),
            );
            let (ty, desc, payload) = (c"user", c"capgate-run-secret", b"s3cr3t");
            libc::syscall(
                libc::SYS_add_key,
                ty.as_ptr(),
                desc.as_ptr(),
                payload.as_ptr(),
                payload.len(),
                -3 as libc::c_long, // KEY_SPEC_SESSION_KEYRING
            );
            // A root-only file left open without close-on-exec at fd 9.
            let fd = libc::open(secret_c.as_ptr(), libc::O_RDONLY);
            if fd < 0 || libc::dup2(fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let o = text(&out.stdout);
    let e = text(&out.stderr);
    assert!(
        !o.contains("client-fd-secret"),
        "fd 9 reached the sandbox: {o}"
    );
    let fds = o.lines().next().unwrap_or("");
    assert!(
        fds.split_whitespace()
            .all(|fd| ["0", "1", "2", "3"].contains(&fd)),
        "fds inside: {fds}"
    );
    assert!(
        o.contains("KEY -1"),
        "the probe must run and find no key: {o}"
    );
    assert!(!o.contains("s3cr3t"), "the client's key is readable: {o}");
    assert!(
        e.contains("Bad file descriptor") || e.contains("9"),
        "cat <&9 must fail: {e}"
    );
}

#[test]
fn python_venv_and_node_package_are_launcher_grants() {
    if !require_tools(
        "python_venv_and_node_package_are_launcher_grants",
        &["bwrap", "setpriv", "python3", "node"],
    ) {
        return;
    }
    let dir = TempDir::new("grants");
    let secret = dir.file("secret.txt", "TOP SECRET", 0o644);
    // A venv: bin/python3 -> the base interpreter, pyvenv.cfg, an entry point.
    let py = Path::new("/usr/bin/python3");
    if !py.exists() {
        assert!(!in_ci(), "CI needs /usr/bin/python3");
        return;
    }
    let venv = dir.dir("venv", 0o755);
    dir.file(
        "venv/pyvenv.cfg",
        "home = /usr/bin\ninclude-system-site-packages = false\n",
        0o644,
    );
    dir.dir("venv/bin", 0o755);
    std::os::unix::fs::symlink(py, venv.join("bin/python3")).unwrap();
    dir.file(
        "venv/lib/mod_of_server.py",
        "WORD = 'from the venv'\n",
        0o644,
    );
    let tool = dir.file(
        "venv/bin/tool",
        &format!(
            "#!{}/bin/python3\nimport sys; sys.path.insert(0, '{}/lib')\nimport mod_of_server, os\nprint(mod_of_server.WORD)\nprint(os.path.exists('{}'))\n",
            venv.display(),
            venv.display(),
            secret.display()
        ),
        0o755,
    );
    let data = dir.dir("venv/data", 0o755);
    chown(&data, 65534, 65534);
    let m = dir.manifest(
        "py",
        &[format!("fs:read,write,create:{}/**", data.display())],
    );
    let report = dir.join("report.json");
    let out = run(
        &m,
        &["--verbose", "--report", &report.display().to_string()],
        &[&tool.display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "from the venv\nFalse\n",
        "{}",
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "capgate: launcher grant: read-only {} (python venv",
            venv.display()
        )),
        "{err}"
    );
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    let grants = r["launcherGrants"].as_array().unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g["path"] == venv.display().to_string()),
        "{r}"
    );
    // The grant is read-only, and the declared write inside it still works.
    let out = run(
        &m,
        &[],
        &[
            "sh",
            "-c",
            &format!(
                "echo x > {}/y && ! touch {}/bin/evil",
                data.display(),
                venv.display()
            ),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!venv.join("bin/evil").exists());

    // A node package behind a bin symlink: bin/x -> ../lib/node_modules/pkg/index.js.
    let pkg = dir.dir("npm/lib/node_modules/@scope/pkg", 0o755);
    dir.file(
        "npm/lib/node_modules/@scope/pkg/package.json",
        "{\"name\":\"@scope/pkg\"}",
        0o644,
    );
    dir.file(
        "npm/lib/node_modules/@scope/pkg/node_modules/dep/index.js",
        "module.exports = 'dep ok';\n",
        0o644,
    );
    dir.file(
        "npm/lib/node_modules/@scope/pkg/node_modules/dep/package.json",
        "{\"name\":\"dep\"}",
        0o644,
    );
    dir.file(
        "npm/lib/node_modules/@scope/pkg/index.js",
        &format!(
            "#!/usr/bin/env node\nconsole.log(require('dep'));\nconsole.log(require('fs').existsSync('{}'));\n",
            secret.display()
        ),
        0o755,
    );
    dir.file("npm/lib/node_modules/other/secret.js", "x", 0o644);
    dir.dir("npm/bin", 0o755);
    let bin = dir.join("npm/bin/pkg");
    std::os::unix::fs::symlink("../lib/node_modules/@scope/pkg/index.js", &bin).unwrap();
    let out = run(&empty(&dir), &["--verbose"], &[&bin.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "dep ok\nfalse\n");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("read-only {} (node package", pkg.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("symlink {} -> ../lib", bin.display())),
        "{err}"
    );
    // Only the package: a sibling package is not readable.
    let out = run(
        &empty(&dir),
        &[],
        &["node", &pkg.join("index.js").display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &empty(&dir),
        &[],
        &[
            "cat",
            &dir.join("npm/lib/node_modules/other/secret.js")
                .display()
                .to_string(),
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn broad_runtime_grants_and_downloaders_are_refused() {
    if !require_tools("broad_runtime_grants_and_downloaders_are_refused", BASE) {
        return;
    }
    let dir = TempDir::new("broad");
    let m = empty(&dir);
    // A "venv" that is a home directory would expose the whole home.
    let home = Path::new("/home").join(unique());
    let _guard = HomeGuard(home.clone());
    fs::create_dir_all(home.join("bin")).unwrap();
    fs::write(home.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    fs::write(home.join("bin/srv"), "#!/bin/sh\necho hi\n").unwrap();
    chmod(&home.join("bin/srv"), 0o755);
    let out = run(&m, &[], &[&home.join("bin/srv").display().to_string()]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.starts_with("capgate: RUN_RUNTIME_GRANT: "), "{err}");
    insta::assert_snapshot!(
        "run_runtime_grant_home",
        err.replace(&home.display().to_string(), "/home/[USER]")
    );
    for cmd in [
        &["npx", "-y", "@modelcontextprotocol/server-memory"][..],
        &["uvx", "mcp-server-time"],
        &["npm", "exec", "--", "pkg"],
        &["uv", "tool", "run", "mcp-server-git"],
    ] {
        let out = run(&m, &[], cmd);
        assert_eq!(out.status.code(), Some(125), "{cmd:?}");
        assert!(
            text(&out.stderr).starts_with("capgate: RUN_DOWNLOADER: "),
            "{cmd:?}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = run(
        &m,
        &[],
        &["npx", "-y", "@modelcontextprotocol/server-memory"],
    );
    insta::assert_snapshot!("run_downloader_npx", text(&out.stderr));
}

struct HomeGuard(std::path::PathBuf);
impl Drop for HomeGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------ clock:tzdata

#[test]
fn clock_tzdata_gives_the_hosts_zone() {
    if !require_tools(
        "clock_tzdata_gives_the_hosts_zone",
        &["bwrap", "setpriv", "unshare", "mount", "date"],
    ) {
        return;
    }
    let zone = "Europe/Warsaw";
    if !Path::new("/usr/share/zoneinfo").join(zone).exists() {
        assert!(!in_ci(), "CI needs tzdata ({zone})");
        return;
    }
    let dir = TempDir::new("tz");
    let m = dir.manifest("tz", &["clock:tzdata".into()]);
    let plain = dir.manifest("notz", &[]);
    // A host whose local zone is Europe/Warsaw: a private mount namespace
    // with its own /etc (localtime -> the zone), the way distributions link it.
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /etc; ln -s /usr/share/zoneinfo/{zone} /etc/localtime; \
         echo host=$(date +%Z); \
         {cg} run {m} -- sh -c 'echo tz=$TZ; echo in=$(date +%Z)'; \
         {cg} run {plain} -- sh -c 'echo plain=$TZ'",
        cg = env!("CARGO_BIN_EXE_capgate"),
        m = m.display(),
        plain = plain.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    let host = o.lines().find_map(|l| l.strip_prefix("host=")).unwrap();
    assert!(o.contains(&format!("tz={zone}\n")), "{o}");
    assert!(o.contains(&format!("in={host}\n")), "{o}");
    // Without clock:tzdata no zone is given.
    assert!(o.contains("plain=\n"), "{o}");
}

// ------------------------------------------------------------ one-line errors

#[test]
fn failures_are_one_clear_line() {
    if !require_tools("failures_are_one_clear_line", BASE) {
        return;
    }
    let dir = TempDir::new("errs");
    let missing = dir.join("not-there");
    /// (label, manifest, environment, command, expected stderr start)
    type Case<'a> = (
        &'a str,
        std::path::PathBuf,
        Vec<String>,
        Vec<&'a str>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "missing bind source",
            dir.manifest("miss", &[format!("fs:read:{}/**", missing.display())]),
            vec![],
            vec!["true"],
            "capgate: RUN_BIND_SOURCE: ",
        ),
        (
            "missing writable bind source",
            dir.manifest(
                "missw",
                &[format!("fs:read,write:{}/**", missing.display())],
            ),
            vec![],
            vec!["true"],
            "capgate: RUN_BIND_SOURCE: ",
        ),
        (
            "refused manifest",
            dir.manifest("bad", &["fs:read:relative/path".into()]),
            vec![],
            vec!["true"],
            "capgate: CAP_FS_RELATIVE: ",
        ),
        (
            "command not found",
            empty(&dir),
            vec![],
            vec!["cg-no-such-command"],
            "capgate: RUN_COMMAND: ",
        ),
        (
            "bwrap missing",
            empty(&dir),
            vec!["CAPGATE_TOOL_PATH=/nonexistent-capgate".into()],
            vec!["/bin/true"],
            "capgate: RUN_START: bwrap is not installed",
        ),
    ];
    for (label, m, env, cmd, want) in cases {
        let mut c = capgate();
        c.arg("run")
            .arg(&m)
            .arg("--")
            .args(&cmd)
            .stdin(Stdio::null());
        for e in &env {
            let (k, v) = e.split_once('=').unwrap();
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{label}");
        assert!(
            out.stdout.is_empty(),
            "{label}: stdout {}",
            text(&out.stdout)
        );
        assert!(err.starts_with(want), "{label}: {err}");
        let snap = format!("run_error_{}", label.replace(' ', "_"));
        insta::assert_snapshot!(snap, norm(&out.stderr, &dir));
    }
}

// ------------------------------------------------------------ docker target

/// A test engine config (runc; ulimits this VM allows), as the enforcement
/// suite uses; capgate passes its environment to the engine.
fn containers_conf(dir: &TempDir) -> std::path::PathBuf {
    dir.file(
        "containers.conf",
        "[containers]\ndefault_ulimits = [\"nofile=1024:20000\", \"nproc=32768:32768\"]\n\n[engine]\nruntime = \"runc\"\n",
        0o644,
    )
}

/// `localhost/capgate-run-test:<hash of busybox>`: busybox and a few applets.
fn busybox_image(conf: &Path) -> String {
    let bb = fs::read("/bin/busybox").expect("busybox-static");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in &bb {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    let tag = format!("localhost/capgate-run-test:{h:016x}");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", conf)
            .output()
            .unwrap()
    };
    if podman(&["image", "exists", &tag]).status.success() {
        return tag;
    }
    let root = TempDir::new("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "run", "var/tmp"] {
        root.dir(d, 0o755);
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "cat", "sleep", "env", "id", "true", "echo", "touch"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    let tar = root.path.with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root.path)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = podman(&["import", "-q", &tar.display().to_string(), &tag]);
    let _ = fs::remove_file(&tar);
    assert!(out.status.success(), "podman import: {}", text(&out.stderr));
    tag
}

#[test]
fn docker_target_runs_with_the_installed_engine() {
    if !require_tools(
        "docker_target_runs_with_the_installed_engine",
        &["podman", "runc", "tar", "busybox"],
    ) {
        return;
    }
    let dir = TempDir::new("docker");
    let conf = containers_conf(&dir);
    let image = busybox_image(&conf);
    let data = dir.dir("data", 0o755);
    let m = dir.manifest(
        "docker",
        &[
            "env:read:CG_DECLARED".into(),
            format!("fs:read,write,create:{}/**", data.display()),
        ],
    );
    let docker = |flags: &[&str], cmd: &[&str], stdin: &[u8]| {
        let mut c = capgate();
        c.arg("run")
            .arg(&m)
            .args(["--target", "docker", "--image", &image])
            .args(flags)
            .arg("--")
            .args(cmd)
            .env("CONTAINERS_CONF", &conf)
            .env("CG_DECLARED", "declared value")
            .env("CG_UNDECLARED", "undeclared-secret")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    // stdin reaches the server (--interactive), bytes unchanged; exit status back.
    let input: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let out = docker(&[], &["sh", "-c", "cat; exit 5"], &input);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        out.stdout == input,
        "stdout differs ({} bytes)",
        out.stdout.len()
    );
    // The data directory is root's: a warning names it and the fix.
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "writable mount {} is not writable",
            data.display()
        )),
        "{err}"
    );
    // Environment: the declared name only.
    let out = docker(
        &["--user", "4321:4321"],
        &["sh", "-c", &format!("env; touch {}/x", data.display())],
        b"",
    );
    let o = text(&out.stdout);
    assert!(o.contains("CG_DECLARED=declared value"), "{o}");
    assert!(!o.contains("undeclared-secret"), "{o}");
    // --user: the container's host uid; the warning said so, the write failed.
    assert!(!out.status.success());
    chown(&data, 4321, 4321);
    let out = docker(
        &["--user", "4321:4321"],
        &["touch", &format!("{}/y", data.display())],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::metadata(data.join("y")).unwrap().uid(), 4321);
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );

    // A writable /tmp (a browser declares one) with TMPDIR=/tmp and no installed
    // profile: root's built-in copy is written outside /tmp, so the run starts
    // (it was OPTION_IN_WRITABLE when the copy went to $TMPDIR/capgate-0).
    let installed = Path::new("/etc/capgate/docker-seccomp.json").exists();
    if !require(
        "docker_target_runs_with_the_installed_engine (built-in seccomp profile)",
        if installed {
            vec![
                "no installed /etc/capgate/docker-seccomp.json (it hides the built-in copy)".into(),
            ]
        } else {
            Vec::new()
        },
    ) {
        return;
    }
    let tmp_writer = dir.manifest("tmp-writer", &["fs:read,write,create:/tmp/**".into()]);
    let run_tmp_writer = |umask: libc::mode_t| {
        let mut c = capgate();
        c.arg("run")
            .arg(&tmp_writer)
            .args(["--target", "docker", "--image", &image, "--", "true"])
            .env("CONTAINERS_CONF", &conf)
            .env("TMPDIR", "/tmp")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null());
        // SAFETY: umask only sets the child's file mode mask before exec.
        unsafe {
            c.pre_exec(move || {
                libc::umask(umask);
                Ok(())
            })
        };
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let profile = fs::read_dir("/run/capgate")
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("docker-seccomp-")
            })
            .expect("root's built-in profile is in /run/capgate")
            .path();
        let meta = fs::metadata(&profile).unwrap();
        assert_eq!(meta.uid(), 0);
        assert_eq!(
            meta.mode() & 0o022,
            0,
            "the profile is writable only by root (umask {umask:o})"
        );
        profile
    };
    let profile = run_tmp_writer(0o022);
    // /run/capgate is searchable by every user: a profile someone made
    // writable is written again, not reused; so is one made under umask 0.
    chmod(&profile, 0o666);
    run_tmp_writer(0o022);
    fs::remove_file(&profile).unwrap();
    run_tmp_writer(0);
}

#[test]
fn docker_container_dies_with_its_client_even_on_sigkill() {
    if !require_tools(
        "docker_container_dies_with_its_client_even_on_sigkill",
        &["podman", "runc", "tar", "busybox"],
    ) {
        return;
    }
    let dir = TempDir::new("dockerkill");
    let conf = containers_conf(&dir);
    let image = busybox_image(&conf);
    let m = empty(&dir);
    // SIGKILL leaves the engine no chance to clean up; SIGTERM/SIGINT would be
    // proxied to the server as the container's pid 1, which ignores them.
    for sig in ["KILL", "TERM", "INT"] {
        let marker = unique();
        let child = capgate()
            .arg("run")
            .arg(&m)
            .args(["--target", "docker", "--image", &image, "--"])
            .args(["sh", "-c", &format!("sleep 1000; : {marker}")])
            .env("CONTAINERS_CONF", &conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = Proc(child);
        let own = p.0.id();
        assert!(
            wait_for(30, || pids_with(&marker).iter().any(|&q| q != own)),
            "{sig}: container did not start"
        );
        signal(own, sig);
        let _ = p.0.wait();
        assert!(
            wait_for(30, || pids_with(&marker).is_empty()),
            "{sig}: container process left behind: {:?}",
            pids_with(&marker)
        );
        let ps = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .env("CONTAINERS_CONF", &conf)
            .output()
            .unwrap();
        let name = format!("capgate-run-{own}-");
        assert!(
            wait_for(10, || !text(
                &Command::new("podman")
                    .args(["ps", "-a", "--format", "{{.Names}}"])
                    .env("CONTAINERS_CONF", &conf)
                    .output()
                    .unwrap()
                    .stdout
            )
            .contains(&name)),
            "{sig}: container left: {}",
            text(&ps.stdout)
        );
    }
}

// ------------------------------------------------------------ examples/servers

#[test]
fn example_server_manifests_compile_and_are_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/servers");
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        n += 1;
        let out = capgate()
            .args(["compile", "--target", "bwrap"])
            .arg(e.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["unenforceable"], serde_json::json!([]), "{name}");
        assert!(
            readme.contains(&format!("capgate run examples/servers/{name}")),
            "{name} has no run command"
        );
        // No install layout in a reviewed manifest.
        let text = fs::read_to_string(e.path()).unwrap();
        for p in ["/opt/", "/usr/lib/node_modules", "venv", ".pyenv"] {
            assert!(!text.contains(p), "{name} names an install path {p}");
        }
    }
    assert_eq!(n, 5);
}
