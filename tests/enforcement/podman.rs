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
const LAYOUT: &str = "v1";
const APPLETS: &[&str] = &[
    "sh", "cat", "touch", "grep", "id", "env", "ls", "echo", "sleep", "cut", "tr", "sort", "head",
    "test", "true",
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

/// Whether an ELF file has no program interpreter (is statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).all(|i| {
        let o = phoff + i * size;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != 3
    })
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("enforcement")
}

/// A static busybox: the installed busybox-static, or one fetched with
/// `apt-get download busybox-static`.
fn busybox() -> PathBuf {
    for p in ["/usr/bin/busybox", "/bin/busybox"] {
        if is_static_elf(Path::new(p)) {
            return PathBuf::from(p);
        }
    }
    let dir = work_dir().join(format!("busybox-{}", short()));
    std::fs::create_dir_all(&dir).unwrap();
    ok(Command::new("apt-get")
        .args(["download", "-q", "busybox-static"])
        .current_dir(&dir));
    let deb = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".deb"))
        .expect("busybox-static .deb")
        .path();
    ok(&mut cmd("dpkg-deb", &["-x", &s(&deb), &s(&dir.join("x"))]));
    let bin = dir.join("x/bin/busybox");
    assert!(is_static_elf(&bin), "busybox-static is not static");
    bin
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
        for b in bytes.iter().chain(LAYOUT.as_bytes()) {
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
            // world-writable, so only a read-only rootfs can refuse a write
            ("rwtest", 0o1777),
        ] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).unwrap();
            chmod(&p, mode);
        }
        std::fs::copy(&bin, root.join("bin/busybox")).unwrap();
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

/// `argv` with `,readonly` dropped from the `--mount` whose source is `path`.
fn mount_rw(argv: &[String], path: &Path) -> Vec<String> {
    let spec = format!("type=bind,source={p},target={p},readonly", p = s(path));
    argv.iter()
        .map(|a| {
            if *a == spec {
                spec.trim_end_matches(",readonly").to_owned()
            } else {
                a.clone()
            }
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
    let (argv, injections) = argv(&compile("container.json", &manifest, "docker", false, &[]));
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
