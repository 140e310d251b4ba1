//! docker: the compiled `docker run` flags, run unchanged by podman with runc
//! on a local image holding only a static busybox (no registry). The harness
//! adds only `--name` (for cleanup), the image and the probe command, plus a
//! test-only CONTAINERS_CONF (runc, ulimits this VM allows).
//!
//! Networking: podman must never build networks here. A policy without a
//! net capability pins `--network none`; should a policy ever omit
//! `--network`, the harness supplies a test-owned namespace with extra
//! interfaces instead of podman's default bridge, so the probe sees the
//! difference without touching the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use crate::support::*;

/// Bump when the rootfs layout changes.
const LAYOUT: &str = "v2";
/// The namespace probe, built with `gcc -static` into the image as
/// /bin/nsprobe (provenance in the file).
const NSPROBE_C: &str = include_str!("probe.c");
const APPLETS: &[&str] = &[
    "sh", "cat", "touch", "grep", "id", "env", "ls", "echo", "sleep", "cut", "tr", "sort", "head",
    "test", "true", "unshare", "dd", "du", "df", "awk", "mkdir",
];
const SECRET: &str = "capgate-host-secret-must-not-leak";
const TOKEN: (&str, &str) = ("CAPGATE_TOKEN", "token-from-host");

/// The sandbox probe, in busybox sh. Arguments: RO_DIR RW_DIR CONF_FILE SPAWN.
const PROBE_SH: &str = r#"
st() { grep "^$1:" /proc/self/status | tr -d ' \t' | cut -d: -f2; }
echo uid=$(id -u)
echo gid=$(id -g)
for k in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs; do echo $k=$(st $k); done
echo root_mount=$(grep -E '^[^ ]+ / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)
touch /rwtest/probe 2>/dev/null && echo rootfs_write=ok || echo rootfs_write=fail
touch /tmp/probe 2>/dev/null && echo tmp_write=ok || echo tmp_write=fail
echo ro_read=$(cat "$1/f" 2>/dev/null)
echo ro-probe > "$1/f" 2>/dev/null && echo ro_write=ok || echo ro_write=fail
echo ro-new > "$1/new-$HOSTNAME" 2>/dev/null && echo ro_create=ok || echo ro_create=fail
echo "rw-$HOSTNAME" > "$2/out-$HOSTNAME" 2>/dev/null && echo rw_write=ok || echo rw_write=fail
echo conf_read=$(cat "$3" 2>/dev/null)
echo conf-probe > "$3" 2>/dev/null && echo conf_write=ok || echo conf_write=fail
echo net=$(ls /sys/class/net | tr '\n' ,)
echo token=${CAPGATE_TOKEN-unset}
echo secret=${CAPGATE_SECRET-unset}
echo cargo=${CARGO_MANIFEST_DIR-unset}
echo env_keys=$(env | cut -d= -f1 | sort | tr '\n' ,)
echo pids_max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max 2>/dev/null)
if [ "$4" = spawn ]; then
  ( n=0; while [ $n -lt 300 ]; do sleep 30 & n=$((n+1)); echo $n > /tmp/spawned; done ) 2>/dev/null
  echo spawned=$(cat /tmp/spawned)
fi
echo done=1
"#;

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("enforcement")
}

fn busybox() -> PathBuf {
    static_busybox(&work_dir())
}

/// The test engine config: runc (crun cannot run on this VM's hybrid cgroup
/// layout) and ulimits within the VM's hard limits. The nproc soft limit is
/// the hard one, so parallel containers (all uid 65534 on the host) never
/// starve each other's fork probe; only the pids cgroup limits it.
fn containers_conf() -> &'static str {
    static CONF: OnceLock<String> = OnceLock::new();
    CONF.get_or_init(|| {
        let dir = work_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("containers.conf");
        let text = "[containers]\ndefault_ulimits = [\"nofile=1024:20000\", \"nproc=32768:32768\"]\n\n[engine]\nruntime = \"runc\"\n";
        let tmp = dir.join(format!("containers.conf.{}", short()));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        s(&path)
    })
}

fn podman(args: &[&str]) -> Command {
    let mut c = cmd("podman", args);
    c.env("CONTAINERS_CONF", containers_conf());
    // conmon writes an `oom` marker into its working directory when the
    // memory limit kills a process (docker_memory_and_tmpfs_are_bounded):
    // keep it out of the checkout.
    c.current_dir(work_dir());
    c
}

/// `localhost/capgate-enforce:<hash>`, imported once from a busybox rootfs.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let bin = busybox();
        let bytes = std::fs::read(&bin).unwrap();
        // FNV-1a over the binary and the layout: same content, same tag.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in bytes
            .iter()
            .chain(LAYOUT.as_bytes())
            .chain(NSPROBE_C.as_bytes())
        {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
        let tag = format!("localhost/capgate-enforce:{h:016x}");
        if podman(&["image", "exists", &tag])
            .status()
            .unwrap()
            .success()
        {
            return tag;
        }
        let root = work_dir().join(format!("rootfs-{}", short()));
        for (d, mode) in [
            ("", 0o755),
            ("bin", 0o755),
            ("etc", 0o755),
            ("proc", 0o755),
            ("sys", 0o755),
            ("dev", 0o755),
            ("tmp", 0o1777),
            ("run", 0o755),
            ("var/tmp", 0o1777),
            // world-writable, so only a read-only rootfs can refuse a write
            ("rwtest", 0o1777),
        ] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).unwrap();
            chmod(&p, mode);
        }
        std::fs::copy(&bin, root.join("bin/busybox")).unwrap();
        let src = root.with_extension("c");
        std::fs::write(&src, NSPROBE_C).unwrap();
        let built = run(
            &mut cmd(
                "gcc",
                &[
                    "-static",
                    "-O1",
                    "-o",
                    &s(&root.join("bin/nsprobe")),
                    &s(&src),
                ],
            ),
            Duration::from_secs(120),
        );
        let _ = std::fs::remove_file(&src);
        assert!(
            built.status.success(),
            "gcc -static could not build the namespace probe (static libc: apt-get install libc6-dev):\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let tar = root.with_extension("tar");
        ok(&mut cmd("tar", &["-C", &s(&root), "-cf", &s(&tar), "."]));
        ok(&mut podman(&["import", "-q", &s(&tar), &tag]));
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_file(&tar);
        tag
    })
}

/// Removes the named container unless the run finished (then `--rm` did).
struct Container {
    name: String,
    finished: bool,
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.finished {
            let _ = podman(&["rm", "-f", "-t", "0", &self.name]).output();
        }
    }
}

/// Runs `podman run --name N ARGV IMAGE /bin/sh -c PROBE sh RO RW CONF SPAWN`
/// with a host environment holding a secret and the injected variable.
fn probe(
    argv: &[String],
    spare_netns: &str,
    paths: [&Path; 3],
    spawn: bool,
) -> BTreeMap<String, String> {
    let mut argv = argv.to_vec();
    if !argv.iter().any(|a| a == "--network") {
        argv.extend(["--network".to_owned(), format!("ns:{spare_netns}")]);
    }
    let mut guard = Container {
        name: unique(),
        finished: false,
    };
    let mut c = podman(&["run", "--name", &guard.name]);
    c.args(&argv)
        .args([image(), "/bin/sh", "-c", PROBE_SH, "sh"])
        .args(paths.map(s))
        .arg(if spawn { "spawn" } else { "-" })
        .env("CAPGATE_SECRET", SECRET)
        .env(TOKEN.0, TOKEN.1);
    let out = run(&mut c, Duration::from_secs(60));
    guard.finished = true;
    let facts = kv(&String::from_utf8_lossy(&out.stdout));
    assert!(
        facts.contains_key("done"),
        "podman probe did not finish ({}):\nargv: {argv:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    facts
}

fn get<'a>(f: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("<missing>")
}

/// `argv` with `readonly` dropped from the `--mount` whose source is `path`.
fn mount_rw(argv: &[String], path: &Path) -> Vec<String> {
    let head = format!("type=bind,source={p},target={p},", p = s(path));
    argv.iter()
        .map(|a| match a.strip_prefix(&head) {
            Some(opts) => {
                let kept: Vec<&str> = opts.split(',').filter(|o| *o != "readonly").collect();
                format!("{head}{}", kept.join(","))
            }
            None => a.clone(),
        })
        .collect()
}

#[test]
fn docker_flags_under_podman() {
    if !require(
        "docker_flags_under_podman",
        &["podman", "runc", "ip", "tar"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("podman");
    // 0777/0666: only the mounts may refuse writes, never file permissions.
    let project = root.dir("project", 0o777);
    let ro_file = root.file("project/f", "project-data\n", 0o666);
    let out = root.dir("project/out", 0o777);
    let conf = root.file("etc/app.conf", "conf\n", 0o666);
    let manifest = relocate(&fixture("fixtures/enforcement/container.json"), &root.path);
    materialize(&manifest);
    let set = docker_set();
    let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (argv, injections) = argv(&compile("container.json", &manifest, "docker", false, &set));
    assert_eq!(injections, [TOKEN.0]);

    // A namespace with interfaces besides lo: what a container joined to a
    // network would see (the control for --network none).
    let spare = Netns::new();
    let id = short();
    spare.ip(&[
        "link",
        "add",
        &format!("pa{id}"),
        "type",
        "veth",
        "peer",
        "name",
        &format!("pb{id}"),
    ]);
    let _ = image();

    let paths = [project.as_path(), out.as_path(), conf.as_path()];
    let spare_path = spare.path();
    // The policy itself first and alone, so that no control run (which may
    // write where the policy must not) can disturb the host-side checks.
    let f = &probe(&argv, &spare_path, paths, true);
    let ro_after = read(&ro_file);
    let conf_after = read(&conf);
    let rw_after: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter_map(|e| read(&e.path()))
        .collect();
    let ro_entries = std::fs::read_dir(&project).unwrap().count();

    let variants: Vec<(&str, Vec<String>, bool)> = vec![
        ("no --read-only", without(&argv, &["--read-only"]), false),
        (
            "ro mount without readonly",
            mount_rw(&argv, &project),
            false,
        ),
        (
            "no --cap-drop ALL",
            without(&argv, &["--cap-drop", "ALL"]),
            false,
        ),
        (
            "no no-new-privileges",
            without(&argv, &["--security-opt", "no-new-privileges"]),
            false,
        ),
        (
            "no --user",
            without(&argv, &["--user", "65534:65534"]),
            false,
        ),
        (
            "joined network",
            with_value(&argv, "--network", &format!("ns:{spare_path}")),
            false,
        ),
        (
            "pids-limit 1024",
            with_value(&argv, "--pids-limit", "1024"),
            true,
        ),
        (
            "secret passed",
            [argv.clone(), vec!["--env".into(), "CAPGATE_SECRET".into()]].concat(),
            false,
        ),
    ];
    let facts: Vec<BTreeMap<String, String>> = thread::scope(|sc| {
        let handles: Vec<_> = variants
            .iter()
            .map(|(_, a, spawn)| {
                let sp = &spare_path;
                sc.spawn(move || probe(a, sp, paths, *spawn))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ctl = |name: &str| &facts[variants.iter().position(|(n, _, _)| *n == name).unwrap()];
    let mut c = Checks::new();

    // read-only rootfs (probed in a 1777 dir, and in /proc/mounts)
    c.eq("rootfs not writable", get(f, "rootfs_write"), "fail");
    c.eq("rootfs mounted ro", get(f, "root_mount"), "ro");
    c.eq(
        "control: rootfs writable without --read-only",
        get(ctl("no --read-only"), "rootfs_write"),
        "ok",
    );
    c.eq("/tmp tmpfs writable", get(f, "tmp_write"), "ok");

    // mounts
    c.eq("ro mount readable", get(f, "ro_read"), "project-data");
    c.eq("ro mount: file not writable", get(f, "ro_write"), "fail");
    c.eq("ro mount: no new files", get(f, "ro_create"), "fail");
    c.eq(
        "ro file unchanged on the host",
        ro_after.as_deref(),
        Some("project-data\n"),
    );
    c.eq(
        "no new entries in the ro dir on the host (f, out)",
        ro_entries,
        2,
    );
    let ro_ctl = ctl("ro mount without readonly");
    c.eq(
        "control: writable without readonly",
        get(ro_ctl, "ro_create"),
        "ok",
    );
    c.eq("rw child mount writable", get(f, "rw_write"), "ok");
    c.check(
        "rw write visible on the host",
        rw_after.len() == 1 && rw_after[0].starts_with("rw-"),
        || format!("{rw_after:?}"),
    );
    c.eq("bound file readable", get(f, "conf_read"), "conf");
    c.eq("bound file not writable", get(f, "conf_write"), "fail");
    c.eq(
        "bound file unchanged on the host",
        conf_after.as_deref(),
        Some("conf\n"),
    );

    // network
    c.eq("network none: only lo", get(f, "net"), "lo,");
    let joined = get(ctl("joined network"), "net");
    c.check(
        "control: a joined network shows more than lo",
        joined.contains(&format!("pa{id}")),
        || joined.to_owned(),
    );

    // environment
    c.eq("injected variable passed", get(f, "token"), TOKEN.1);
    c.eq("host secret not leaked", get(f, "secret"), "unset");
    c.eq(
        "host CARGO_MANIFEST_DIR not leaked",
        get(f, "cargo"),
        "unset",
    );
    c.eq(
        "control: --env passes the secret",
        get(ctl("secret passed"), "secret"),
        SECRET,
    );

    // privileges
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        c.eq(&format!("{k} empty"), get(f, k), "0000000000000000");
    }
    c.check(
        "control: bounding set non-empty without --cap-drop ALL",
        get(ctl("no --cap-drop ALL"), "CapBnd") != "0000000000000000",
        || get(ctl("no --cap-drop ALL"), "CapBnd").to_owned(),
    );
    c.eq("NoNewPrivs 1", get(f, "NoNewPrivs"), "1");
    c.eq(
        "control: NoNewPrivs 0 without no-new-privileges",
        get(ctl("no no-new-privileges"), "NoNewPrivs"),
        "0",
    );
    c.eq("uid 65534", get(f, "uid"), "65534");
    c.eq("gid 65534", get(f, "gid"), "65534");
    c.eq(
        "control: uid 0 without --user",
        get(ctl("no --user"), "uid"),
        "0",
    );

    // pids limit
    c.eq("pids.max is 256", get(f, "pids_max"), "256");
    let spawned: u32 = get(f, "spawned").parse().unwrap_or(0);
    c.check(
        "fork stops near the pids limit",
        (200..256).contains(&spawned),
        || format!("spawned {spawned}"),
    );
    c.eq(
        "control: 300 processes with pids-limit 1024",
        get(ctl("pids-limit 1024"), "spawned"),
        "300",
    );

    drop(spare);
    c.finish("docker_flags_under_podman");
}

/// A policy with net capabilities joins the egress network the host must
/// create; the suite never lets podman build it, so this stays a check of
/// the flags (github.json relocated).
#[test]
fn docker_egress_network_flags() {
    let root = TempDir::new("docker-net");
    let manifest = relocate(&fixture("fixtures/manifests/github.json"), &root.path);
    let (argv, _) = argv(&compile("github.json", &manifest, "docker", false, &[]));
    let mut c = Checks::new();
    let networks: Vec<&String> = argv
        .windows(2)
        .filter(|w| w[0] == "--network")
        .map(|w| &w[1])
        .collect();
    c.eq(
        "exactly one --network, capgate-egress",
        networks,
        vec![&"capgate-egress".to_owned()],
    );
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        c.check(
            &format!("{name} points at the egress proxy"),
            argv.iter()
                .any(|a| a.starts_with(&format!("{name}=http://"))),
            || format!("{argv:?}"),
        );
    }
    c.check(
        "never host networking",
        !argv.iter().any(|a| a == "host" || a.starts_with("--net=")),
        || format!("{argv:?}"),
    );
    c.finish("docker_egress_network_flags");
}

// ------------------------------------------------------------------ hardening findings

/// Options every compile in this suite sets: the engine (podman spells a
/// safe read-only bind differently from Docker) and the seccomp profile
/// capgate ships, by its path in this checkout (the documented default is
/// where the host installs it, see docs/security.md).
fn docker_set() -> Vec<(&'static str, String)> {
    vec![
        ("engine", "podman".to_owned()),
        (
            "seccomp_profile",
            s(&repo().join("profiles/docker/seccomp.json")),
        ),
    ]
}

fn compile_docker(label: &str, manifest: &str, extra: &[(&str, &str)]) -> Vec<String> {
    let set = docker_set();
    let mut all: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    argv(&compile(label, manifest, "docker", false, &all)).0
}

fn empty_manifest(caps: &[&str]) -> String {
    serde_json::json!({
        "name": "podman-hardening",
        "version": "1.0.0",
        "tools": [{"name": "t", "capabilities": caps}],
    })
    .to_string()
}

/// Runs `podman run ARGV IMAGE /bin/sh -c SCRIPT sh ARGS...` (the compiled
/// flags unchanged; the harness adds only `--name`) and returns its output.
fn sh_in(argv: &[String], script: &str, args: &[&str]) -> std::process::Output {
    let mut guard = Container {
        name: unique(),
        finished: false,
    };
    let mut c = podman(&["run", "--name", &guard.name]);
    c.args(argv)
        .args([image(), "/bin/sh", "-c", script, "sh"])
        .args(args);
    let out = run(&mut c, Duration::from_secs(60));
    guard.finished = true;
    out
}

/// [`sh_in`] whose script must print `done=1`; its `key=value` lines.
fn facts_in(argv: &[String], script: &str, args: &[&str]) -> BTreeMap<String, String> {
    let out = sh_in(argv, &format!("{script}\necho done=1\n"), args);
    let facts = kv(&String::from_utf8_lossy(&out.stdout));
    assert!(
        facts.contains_key("done"),
        "podman probe did not finish ({}):\nargv: {argv:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    facts
}

/// Every way to a new or joined user namespace, with the result expected
/// when they are refused (G1): clone3's flags sit behind a pointer that
/// seccomp cannot read, so it is ENOSYS and libc falls back to clone.
const USERNS_SPELLINGS: &[(&str, &str, &str)] = &[
    ("unshare_user", "nsprobe unshare 0x10000000", "EPERM"),
    // CLONE_NEWUSER | CLONE_NEWNS: the flag among others
    ("unshare_user_mount", "nsprobe unshare 0x10020000", "EPERM"),
    // every namespace at once, as `unshare -Upinmuc` does
    ("unshare_all", "nsprobe unshare 0x7e020000", "EPERM"),
    ("clone_user", "nsprobe clone 0x10000000", "EPERM"),
    ("clone3_user", "nsprobe clone3 0x10000000", "ENOSYS"),
    (
        "setns_user",
        "nsprobe setns /proc/self/ns/user 0x10000000",
        "EPERM",
    ),
    // nstype 0 = any type, a user namespace included
    ("setns_any", "nsprobe setns /proc/self/ns/user 0", "EPERM"),
    (
        "busybox_unshare",
        "unshare -U true 2>/dev/null && echo OK || echo fail",
        "fail",
    ),
];

/// G1: podman's default seccomp profile lets any container create user
/// namespaces (and with them a root with full capabilities over its own
/// namespaces). Without `nestedSandbox` the compiled flags must refuse them
/// in every spelling; with it, the engine's default profile is used.
#[test]
fn docker_user_namespaces_only_with_nested_sandbox() {
    if !require(
        "docker_user_namespaces_only_with_nested_sandbox",
        &["podman", "runc", "tar", "gcc"],
        true,
    ) {
        return;
    }
    let plain = compile_docker("plain.json", &empty_manifest(&[]), &[]);
    let nested = compile_docker(
        "nested.json",
        &empty_manifest(&["exec:spawn:chromium?nestedSandbox=true"]),
        &[],
    );
    let mut script = String::new();
    for (key, command, _) in USERNS_SPELLINGS {
        script.push_str(&format!("echo {key}=$({command})\n"));
    }
    // Ordinary processes and threads still start (clone without the flag).
    script.push_str("echo clone_plain=$(nsprobe clone 0)\n");
    script.push_str("echo fork=$(sh -c 'true & wait' && echo OK)\n");
    let (p, n) = thread::scope(|sc| {
        let a = sc.spawn(|| facts_in(&plain, &script, &[]));
        let b = sc.spawn(|| facts_in(&nested, &script, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut c = Checks::new();
    for (key, _, refused) in USERNS_SPELLINGS {
        c.eq(
            &format!("no nestedSandbox: {key} refused"),
            get(&p, key),
            refused,
        );
    }
    c.eq(
        "no nestedSandbox: clone without CLONE_NEWUSER works",
        get(&p, "clone_plain"),
        "OK",
    );
    c.eq("no nestedSandbox: fork works", get(&p, "fork"), "OK");
    // The control: under podman the engine default allows them, so the
    // probe would see a userns if the profile let one through.
    c.eq(
        "nestedSandbox (engine default profile): unshare(CLONE_NEWUSER) works",
        get(&n, "unshare_user"),
        "OK",
    );
    c.eq(
        "nestedSandbox: busybox unshare -U works",
        get(&n, "busybox_unshare"),
        "OK",
    );
    c.finish("docker_user_namespaces_only_with_nested_sandbox");
}

/// Prints every tmpfs the container user can write as `tmpfs:<dir>=<options>`
/// (the engine's read-only masks and root-owned tmpfs are not), the memory
/// limits of the container's cgroup (v1 or v2).
const MEMORY_SH: &str = r#"
while read -r dev dir type opts rest; do
  case "$opts" in rw,*) [ "$type" = tmpfs ] && [ -w "$dir" ] && echo "tmpfs:$dir=$opts";; esac
done < /proc/mounts
lim() { for f in "$@"; do [ -r "$f" ] && { cat "$f"; return; }; done; echo none; }
echo mem=$(lim /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max)
echo memsw=$(lim /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/memory.swap.max)
for d in /tmp /var/tmp /run /dev/shm; do echo "kb:$d=$(df -k $d | awk 'NR==2 {print $2}')"; done
"#;

/// The size in KiB a tmpfs option list declares (`size=65536k`), if any.
fn tmpfs_size_kb(options: &str) -> Option<u64> {
    let v = options.split(',').find_map(|o| o.strip_prefix("size="))?;
    let (n, mul) = match v.as_bytes().last()? {
        b'k' => (&v[..v.len() - 1], 1),
        b'm' => (&v[..v.len() - 1], 1024),
        b'g' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 0),
    };
    n.parse::<u64>()
        .ok()
        .map(|n| if mul == 0 { n / 1024 } else { n * mul })
}

/// G2: an empty manifest's container could pin host RAM: no memory limit,
/// and every tmpfs (`--tmpfs /tmp`, and the /run, /var/tmp podman adds in
/// read-only mode) sized at half the host's RAM. Now every tmpfs has a size,
/// the memory cgroup has a limit without swap, and tmpfs writes are charged
/// to it.
#[test]
fn docker_memory_and_tmpfs_are_bounded() {
    if !require(
        "docker_memory_and_tmpfs_are_bounded",
        &["podman", "runc", "tar", "gcc"],
        true,
    ) {
        return;
    }
    let host_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("MemTotal");
    let defaults = compile_docker("empty.json", &empty_manifest(&[]), &[]);
    // Sizes chosen by the test, then read back from the kernel.
    let set = [("memory", "64m"), ("tmpfs_size", "48m"), ("shm_size", "8m")];
    let small = compile_docker("small.json", &empty_manifest(&[]), &set);
    // Fill /tmp, then /var/tmp: together more than the memory limit.
    let fill = format!(
        "{MEMORY_SH}\ndd if=/dev/zero of=/tmp/a bs=1M count=40 2>/dev/null; echo tmp_fill=$?\n\
         dd if=/dev/zero of=/var/tmp/b bs=1M count=40 2>/dev/null; echo var_tmp_fill=$?\n\
         echo filled_kb=$(du -sk /tmp /var/tmp | awk '{{s += $1}} END {{print s}}')"
    );
    let over = "dd if=/dev/zero of=/tmp/big bs=1M count=49 2>/dev/null; echo tmp_over=$?\n\
                echo tmp_kb=$(du -sk /tmp | awk '{print $1}')";
    let (d, m, o) = thread::scope(|sc| {
        let a = sc.spawn(|| facts_in(&defaults, MEMORY_SH, &[]));
        let b = sc.spawn(|| facts_in(&small, &fill, &[]));
        let c = sc.spawn(|| facts_in(&small, over, &[]));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    let mut c = Checks::new();
    let tmpfs = |f: &BTreeMap<String, String>| -> Vec<(String, String)> {
        f.iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("tmpfs:")?.to_owned(), v.clone())))
            .collect()
    };
    let mounted = tmpfs(&d);
    for dir in ["/tmp", "/var/tmp", "/dev/shm"] {
        c.check(
            &format!("defaults: {dir} is a writable tmpfs"),
            mounted.iter().any(|(m, _)| m == dir),
            || format!("{mounted:?}"),
        );
    }
    for (dir, options) in &mounted {
        let kb = tmpfs_size_kb(options);
        c.check(
            &format!("defaults: writable tmpfs {dir} has a size below a quarter of host RAM"),
            kb.is_some_and(|kb| kb > 0 && kb < host_kb / 4),
            || format!("{options} (host {host_kb} kB)"),
        );
    }
    for dir in ["/tmp", "/var/tmp", "/run", "/dev/shm"] {
        let kb: u64 = get(&d, &format!("kb:{dir}")).parse().unwrap_or(u64::MAX);
        c.check(
            &format!("defaults: {dir} (df) below a quarter of host RAM"),
            kb < host_kb / 4,
            || format!("{kb} kB (host {host_kb} kB)"),
        );
    }
    let mem: u64 = get(&d, "mem").parse().unwrap_or(u64::MAX);
    c.check(
        "defaults: memory limit below host RAM",
        mem < host_kb * 1024,
        || get(&d, "mem").to_owned(),
    );
    c.eq(
        "defaults: no swap beyond the memory limit",
        get(&d, "memsw"),
        get(&d, "mem"),
    );

    c.eq("set memory=64m: limit", get(&m, "mem"), "67108864");
    c.eq("set memory=64m: no swap", get(&m, "memsw"), "67108864");
    for dir in ["/tmp", "/var/tmp", "/run"] {
        c.eq(
            &format!("set tmpfs_size=48m: {dir}"),
            get(&m, &format!("kb:{dir}")),
            "49152",
        );
    }
    c.eq("set shm_size=8m: /dev/shm", get(&m, "kb:/dev/shm"), "8192");
    c.eq(
        "a 49 MiB file does not fit a 48 MiB /tmp",
        get(&o, "tmp_over"),
        "1",
    );
    let tmp_kb: u64 = get(&o, "tmp_kb").parse().unwrap_or(u64::MAX);
    c.check("/tmp holds at most its size", tmp_kb <= 49152, || {
        tmp_kb.to_string()
    });
    c.eq("40 MiB in /tmp fits", get(&m, "tmp_fill"), "0");
    let filled: u64 = get(&m, "filled_kb").parse().unwrap_or(u64::MAX);
    c.check(
        "tmpfs pages are charged to the container: /tmp + /var/tmp stay below memory=64m",
        filled < 65536,
        || format!("{filled} kB written"),
    );
    c.finish("docker_memory_and_tmpfs_are_bounded");
}

/// A host mount below `dir`, unmounted on drop.
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(dir: &Path) -> HostMount {
        ok(&mut cmd(
            "mount",
            &["-t", "tmpfs", "-o", "size=1m", &unique(), &s(dir)],
        ));
        HostMount(dir.to_owned())
    }

    fn bind(src: &Path, dir: &Path) -> HostMount {
        ok(&mut cmd("mount", &["--bind", &s(src), &s(dir)]));
        HostMount(dir.to_owned())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes into every submount of the read-only tree $1 and reads its top.
const SUBMOUNT_SH: &str = r#"
echo top=$(cat "$1/top" 2>/dev/null)
echo x >> "$1/inner/f" 2>/dev/null && echo tmpfs_write=ok || echo tmpfs_write=fail
touch "$1/inner/new" 2>/dev/null && echo tmpfs_create=ok || echo tmpfs_create=fail
touch "$1/bound/new" 2>/dev/null && echo bind_create=ok || echo bind_create=fail
touch "$1/a/b/deep/new" 2>/dev/null && echo deep_create=ok || echo deep_create=fail
mkdir "$1/inner/d" 2>/dev/null && echo tmpfs_mkdir=ok || echo tmpfs_mkdir=fail
"#;

/// F9: `--mount type=bind,...,readonly` is read-only only at its top under
/// podman 4.3 + runc 1.1: a host mount below an `fs:read` path stayed
/// writable. The mount is now non-recursive: what is mounted below the
/// declared path on the host is not in the container at all.
#[test]
fn docker_fs_read_submounts_not_writable() {
    if !require(
        "docker_fs_read_submounts_not_writable",
        &["podman", "runc", "tar", "gcc", "mount", "umount"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("podman-subm");
    let ro = root.dir("ro", 0o777);
    root.file("ro/top", "top\n", 0o666);
    let inner = root.dir("ro/inner", 0o777);
    let bound = root.dir("ro/bound", 0o777);
    let deep = root.dir("ro/a/b/deep", 0o777);
    let elsewhere = root.dir("elsewhere", 0o777);
    // Mounts drop before the temp dir (reverse order of declaration).
    let _m1 = HostMount::tmpfs(&inner);
    let _m2 = HostMount::bind(&elsewhere, &bound);
    let _m3 = HostMount::tmpfs(&deep);
    for d in [&inner, &deep] {
        chmod(d, 0o777);
    }
    let f = inner.join("f");
    std::fs::write(&f, "host\n").unwrap();
    chmod(&f, 0o666);

    let dir = s(&ro);
    let spellings = [
        format!("fs:read:{dir}/**"),
        format!("fs:read:{dir}"),
        format!("fs:read:{dir}/*"),
        format!("fs:read:{}/**", s(&root.path)),
    ];
    let runs: Vec<(String, Vec<String>)> = spellings
        .iter()
        .map(|cap| {
            (
                cap.clone(),
                compile_docker("subm.json", &empty_manifest(&[cap]), &[]),
            )
        })
        .collect();
    // Control: the old spelling (`readonly` alone) leaves the submounts writable.
    let old: Vec<String> = runs[0]
        .1
        .iter()
        .map(|a| a.replace(",bind-nonrecursive", ""))
        .collect();
    let facts: Vec<BTreeMap<String, String>> = thread::scope(|sc| {
        let hs: Vec<_> = runs
            .iter()
            .map(|(_, a)| sc.spawn(|| facts_in(a, SUBMOUNT_SH, &[&dir])))
            .chain([sc.spawn(|| facts_in(&old, SUBMOUNT_SH, &[&dir]))])
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut c = Checks::new();
    for ((cap, _), f) in runs.iter().zip(&facts) {
        c.eq(
            &format!("{cap}: declared tree readable"),
            get(f, "top"),
            "top",
        );
        for k in [
            "tmpfs_write",
            "tmpfs_create",
            "bind_create",
            "deep_create",
            "tmpfs_mkdir",
        ] {
            c.eq(&format!("{cap}: {k} refused"), get(f, k), "fail");
        }
    }
    let ctl = facts.last().unwrap();
    c.check(
        "control: readonly alone leaves a submount writable",
        get(ctl, "tmpfs_create") == "ok" && get(ctl, "bind_create") == "ok",
        || format!("{ctl:?}"),
    );
    // The Docker spelling (engine=docker, the default) under podman 4.3:
    // refused before the container starts, never run with writable submounts.
    let docker_argv = compile_docker(
        "subm.json",
        &empty_manifest(&[&spellings[0]]),
        &[("engine", "docker")],
    );
    c.check(
        "engine=docker spells bind-recursive=readonly",
        docker_argv
            .iter()
            .any(|a| a.ends_with(",readonly,bind-recursive=readonly")),
        || format!("{docker_argv:?}"),
    );
    let out = sh_in(&docker_argv, "echo started", &[]);
    c.check(
        "engine=docker under podman 4.3: refused, the container never starts",
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("started"),
        || format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
    );
    // Only the control may have written; nothing from the policy runs.
    c.eq(
        "host file in the submount unchanged by the policy runs",
        read(&f).map(|t| t.lines().next().unwrap_or("").to_owned()),
        Some("host".to_owned()),
    );
    c.finish("docker_fs_read_submounts_not_writable");
}

/// F12: option guards compared text (`--set user=00` ran as root). Every
/// spelling of root is refused with OPTION_INVALID, every forbidden network
/// mode with options too, and a padded spelling of a legal user is the uid
/// the container really runs as.
#[test]
fn docker_user_and_network_options_are_parsed() {
    let manifest = empty_manifest(&["net:connect:api.example.com:443"]);
    let refused = |key: &str, value: &str| -> Option<String> {
        let compiler =
            capgate::compile::Compiler::new(&capgate::assets::Assets::default(), "docker")
                .expect("docker target");
        let settings = capgate::compile::Settings {
            permissive: false,
            set: vec![(key.to_owned(), value.to_owned())],
        };
        match compiler.compile("f12.json", manifest.as_bytes(), &settings) {
            Ok(_) => Some(format!("--set {key}={value} accepted")),
            Err(d) if d[0].code == capgate::diag::Code::OptionInvalid => None,
            Err(d) => Some(format!("--set {key}={value}: {:?}", d[0].code)),
        }
    };
    let mut c = Checks::new();
    for user in [
        "0",
        "00",
        "0000",
        "00:0",
        "+0",
        "0x0",
        "-0",
        "0:0",
        "root",
        "root:root",
        "ROOT",
        "toor:1000",
        "65534",
        "65534:0",
        "65534:00",
        "65534:+0",
        "65534:root",
        " 65534:65534",
        "65534:65534 ",
        "65534:65534:0",
        "4294967295:65534",
        "0x3e8:1000",
        "+1000:1000",
        "1000:",
        ":1000",
        "",
    ] {
        let r = refused("user", user);
        c.check(&format!("user={user:?} refused"), r.is_none(), || {
            r.unwrap_or_default()
        });
    }
    for network in [
        "host",
        "HOST",
        "Host",
        "bridge",
        "bridge:ip=10.88.0.9",
        "default",
        "private",
        "podman",
        "slirp4netns",
        "slirp4netns:allow_host_loopback=true",
        "pasta",
        "pasta:--map-host-loopback,10.0.2.2",
        "container:other",
        "container",
        "ns:/proc/1/ns/net",
        "capgate-egress:ip=10.89.0.5",
        "capgate egress",
        "",
        ":",
        "-x",
    ] {
        let r = refused("network", network);
        c.check(&format!("network={network:?} refused"), r.is_none(), || {
            r.unwrap_or_default()
        });
    }
    for (key, value) in [
        ("memory", "0"),
        ("tmpfs_size", "0m"),
        ("shm_size", "-1m"),
        ("memory", "1t"),
        ("memory", "0x100m"),
        ("seccomp_profile", "unconfined"),
        ("seccomp_profile", "profile.json"),
    ] {
        let r = refused(key, value);
        c.check(&format!("{key}={value:?} refused"), r.is_none(), || {
            r.unwrap_or_default()
        });
    }

    if require(
        "docker_user_and_network_options_are_parsed",
        &["podman", "runc", "tar", "gcc"],
        true,
    ) {
        let argv = compile_docker(
            "user.json",
            &empty_manifest(&[]),
            &[("user", "0065534:065534")],
        );
        c.check(
            "padded user rendered canonical",
            argv.windows(2)
                .any(|w| w[0] == "--user" && w[1] == "65534:65534"),
            || format!("{argv:?}"),
        );
        let f = facts_in(&argv, "echo uid=$(id -u)\necho gid=$(id -g)", &[]);
        c.eq("container uid", get(&f, "uid"), "65534");
        c.eq("container gid", get(&f, "gid"), "65534");
    }
    c.finish("docker_user_and_network_options_are_parsed");
}

/// G1, without an engine: the shipped profile (profiles/docker/seccomp.json,
/// generated by scripts/docker-seccomp.py) allows clone and unshare only
/// without CLONE_NEWUSER, setns only to an explicit non-user namespace type,
/// and never clone3, whatever else an entry lists.
#[test]
fn docker_seccomp_profile_allows_no_user_namespace() {
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    let text = std::fs::read_to_string(repo().join("profiles/docker/seccomp.json")).unwrap();
    let profile: serde_json::Value = serde_json::from_str(&text).expect("profile is JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let mut c = Checks::new();
    let mut seen = BTreeMap::<&str, usize>::new();
    for entry in profile["syscalls"].as_array().expect("syscalls") {
        let names: Vec<&str> = entry["names"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n.as_str())
            .collect();
        let allow = entry["action"] == "SCMP_ACT_ALLOW";
        let args: Vec<&serde_json::Value> = entry["args"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for name in names {
            if !["clone", "clone3", "unshare", "setns"].contains(&name) {
                continue;
            }
            *seen.entry(name).or_default() += 1;
            if !allow {
                continue;
            }
            let ok = match name {
                "clone" | "unshare" => args.iter().any(|a| {
                    a["op"] == "SCMP_CMP_MASKED_EQ"
                        && a["value"].as_u64().is_some_and(|m| m & CLONE_NEWUSER != 0)
                        && a["valueTwo"].as_u64() == Some(0)
                }),
                "setns" => args.iter().any(|a| {
                    a["op"] == "SCMP_CMP_EQ"
                        && a["index"] == 1
                        && a["value"]
                            .as_u64()
                            .is_some_and(|v| v != 0 && v & CLONE_NEWUSER == 0)
                }),
                _ => false,
            };
            c.check(
                &format!("{name} allowed only without a user namespace"),
                ok,
                || entry.to_string(),
            );
        }
    }
    for name in ["clone", "clone3", "unshare", "setns"] {
        c.check(
            &format!("{name} has rules"),
            seen.contains_key(name),
            || format!("{seen:?}"),
        );
    }
    c.finish("docker_seccomp_profile_allows_no_user_namespace");
}

/// G2 with a manifest that binds /tmp, /var/tmp or /run itself: the private
/// tmpfs for that directory is left out (an engine refuses two mounts on one
/// destination), the others stay sized.
#[test]
fn docker_private_tmpfs_yields_to_a_declared_directory() {
    let mut c = Checks::new();
    // `/run` cannot be declared (it holds engine sockets: CAP_FS_RESERVED, tested in
    // paths.rs), so its private tmpfs is always there; only the other two can yield.
    for dir in ["/tmp", "/var/tmp"] {
        let argv = compile_docker(
            "bound.json",
            &empty_manifest(&[&format!("fs:read:{dir}/**")]),
            &[],
        );
        let destinations: Vec<String> = argv
            .windows(2)
            .filter_map(|w| match w[0].as_str() {
                "--tmpfs" => w[1].split(':').next().map(str::to_owned),
                "--mount" => w[1]
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("target="))
                    .map(str::to_owned),
                _ => None,
            })
            .collect();
        c.eq(
            &format!("{dir} declared: one mount there"),
            destinations.iter().filter(|d| *d == dir).count(),
            1,
        );
        for other in ["/tmp", "/var/tmp", "/run"].iter().filter(|o| **o != dir) {
            c.check(
                &format!("{dir} declared: {other} still a sized tmpfs"),
                argv.windows(2)
                    .any(|w| w[0] == "--tmpfs" && w[1].starts_with(&format!("{other}:size="))),
                || format!("{argv:?}"),
            );
        }
    }
    c.finish("docker_private_tmpfs_yields_to_a_declared_directory");
}
