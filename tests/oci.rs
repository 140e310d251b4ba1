//! The oci target against the real thing:
//!
//! - every fixture manifest compiles to a config.json that validates against the OCI
//!   runtime-spec's JSON Schema (tests/data/runtime-spec, the spec runc 1.1.5 was built
//!   against; python3 `jsonschema`, Draft 4), with no key the schema does not know (runc
//!   ignores unknown keys, so a misspelt `noNewPrivileges` would silently drop it);
//! - `runc run` runs the compiled config on a static-busybox rootfs and the probes of the
//!   docker target's podman test check it from inside and outside, each against a control
//!   (the compiled config with one hardening removed) that flips the probe.
//!
//! A missing tool (python3 with jsonschema, runc, root) skips loudly, or fails under `CI=true`.

#[path = "enforcement/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

// ------------------------------------------------------------------ schema

/// Fixture manifests the oci target refuses in strict mode (with ADAPTER_UNSUPPORTED):
/// none, since every fact kind has a rule.
const REFUSED: &[&str] = &[];

/// Validates every config against config-schema.json and the files it `$ref`s, and
/// reports keys that no `properties` of the schema name. Prints one line per problem;
/// exits 1 if there is one.
const VALIDATE_PY: &str = r#"
import json, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import jsonschema

d = sys.argv[1]
store = {}
for f in os.listdir(d):
    if f.endswith(".json"):
        with open(os.path.join(d, f)) as fh:
            store["file://" + os.path.join(d, f)] = json.load(fh)
base = "file://" + os.path.join(d, "config-schema.json")
schema = store[base]
jsonschema.Draft4Validator.check_schema(schema)
resolver = jsonschema.RefResolver(base_uri=base, referrer=schema, store=store)
validator = jsonschema.Draft4Validator(schema, resolver=resolver)

def unknown(inst, sch, path, out):
    if "$ref" in sch:
        with resolver.resolving(sch["$ref"]) as target:
            return unknown(inst, target, path, out)
    if isinstance(inst, dict) and "properties" in sch:
        props = sch["properties"]
        for k, v in inst.items():
            if k in props:
                unknown(v, props[k], path + "/" + k, out)
            elif "additionalProperties" not in sch and "patternProperties" not in sch:
                out.append(path + "/" + k)
    if isinstance(inst, list) and isinstance(sch.get("items"), dict):
        for i, v in enumerate(inst):
            unknown(v, sch["items"], path + "/" + str(i), out)

bad = 0
for path in sys.argv[2:]:
    with open(path) as fh:
        config = json.load(fh)
    problems = ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in validator.iter_errors(config)]
    keys = []
    unknown(config, schema, "", keys)
    problems += [k + ": not a key of the schema" for k in keys]
    for p in sorted(problems):
        print(os.path.basename(path) + ": " + p)
    bad += bool(problems)
print("validated %d configs, %d invalid" % (len(sys.argv) - 2, bad))
sys.exit(1 if bad else 0)
"#;

fn schema_dir() -> PathBuf {
    repo().join("tests/data/runtime-spec")
}

/// Whether python3 with jsonschema can run; otherwise skip loudly (fail under CI=true).
fn python_jsonschema(test: &str) -> Option<String> {
    let python = python();
    let ok = Command::new(&python)
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else {
        skip(
            test,
            "needs python3 with jsonschema (Debian: python3-jsonschema)",
        );
        None
    }
}

fn validate(python: &str, files: &[PathBuf]) -> std::process::Output {
    let mut c = Command::new(python);
    c.args(["-c", VALIDATE_PY])
        .arg(schema_dir())
        .args(files.iter().map(|f| s(f)));
    run(&mut c, Duration::from_secs(120))
}

fn compile_oci(label: &str, manifest: &[u8], set: &[(&str, &str)]) -> Result<String, String> {
    let compiler =
        capgate::compile::Compiler::new(&capgate::assets::Assets::default(), "oci").unwrap();
    let settings = capgate::compile::Settings {
        permissive: false,
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    match compiler.compile(label, manifest, &settings) {
        Ok(out) => Ok(config(&out.artifact)),
        Err(d) => Err(format!("{:?}: {}", d[0].code, d[0].render())),
    }
}

#[test]
fn every_fixture_config_validates_against_the_runtime_spec_schema() {
    let Some(python) =
        python_jsonschema("every_fixture_config_validates_against_the_runtime_spec_schema")
    else {
        return;
    };
    let dir = TempDir::new("oci-schema");
    let mut files = Vec::new();
    let mut refused = Vec::new();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(repo().join("fixtures/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 10, "fixtures not found");
    let provenance = std::fs::read_to_string(schema_dir().join("PROVENANCE.md")).unwrap();
    for p in &fixtures {
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        match compile_oci(&name, &std::fs::read(p).unwrap(), &[]) {
            Ok(text) => {
                let config: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{name}: config.json is not JSON: {e}"));
                let version = config["ociVersion"].as_str().unwrap();
                assert!(
                    provenance.contains(&format!("says `{version}`")),
                    "{name}: ociVersion {version} is not the vendored schema's version"
                );
                files.push(dir.file(&name, &text, 0o644));
            }
            Err(e) => {
                assert!(e.starts_with("AdapterUnsupported"), "{name}: {e}");
                refused.push(name);
            }
        }
    }
    assert_eq!(refused, REFUSED, "fixtures the oci target refuses");
    // Options change numbers and paths: the extremes still validate.
    let empty = std::fs::read(repo().join("fixtures/manifests/empty.json")).unwrap();
    for (i, set) in [
        vec![("uid", "4294967294"), ("gid", "1"), ("pids_limit", "1")],
        vec![("memory", "6m"), ("tmpfs_size", "4k"), ("shm_size", "1g")],
        vec![
            ("memory", "64g"),
            ("rootfs", "/var/lib/images/x"),
            ("command", "/usr/bin/node"),
        ],
    ]
    .iter()
    .enumerate()
    {
        let text = compile_oci("empty.json", &empty, set).unwrap();
        files.push(dir.file(&format!("options-{i}.json"), &text, 0o644));
    }
    let out = validate(&python, &files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains(&format!("validated {} configs, 0 invalid", files.len())),
        "schema validation failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Controls: the validator rejects what runc would misread or ignore.
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    type Break = Box<dyn Fn(&mut Value)>;
    let broken: Vec<(&str, Break)> = vec![
        (
            "uid as text",
            Box::new(|c| c["process"]["user"]["uid"] = json!("65534")),
        ),
        (
            "mount without destination",
            Box::new(|c| {
                c["mounts"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("destination");
            }),
        ),
        (
            "unknown seccomp action",
            Box::new(|c| c["linux"]["seccomp"]["defaultAction"] = json!("SCMP_ACT_MAYBE")),
        ),
        (
            "misspelt noNewPrivileges",
            Box::new(|c| {
                let p = c["process"].as_object_mut().unwrap();
                p.remove("noNewPrivileges");
                p.insert("noNewPrivilege".into(), json!(true));
            }),
        ),
        (
            "negative pids limit type",
            Box::new(|c| c["linux"]["resources"]["pids"]["limit"] = json!("256")),
        ),
    ];
    for (what, mutate) in &broken {
        let mut c = good.clone();
        mutate(&mut c);
        let f = dir.file("broken.json", &c.to_string(), 0o644);
        let out = validate(&python, &[f]);
        assert!(
            !out.status.success(),
            "control `{what}`: the validator accepted it:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

// ------------------------------------------------------------------ runc

const APPLETS: &[&str] = &[
    "sh", "cat", "touch", "grep", "id", "env", "ls", "echo", "sleep", "cut", "tr", "sort", "wc",
    "test", "true", "unshare", "df", "awk", "mkdir", "ln", "stat",
];
const SECRET: &str = "capgate-host-secret-must-not-leak";

/// The probe, in busybox sh. Arguments: RO_DIR RW_DIR CONF_FILE UNDECLARED_DIR SPAWN.
const PROBE_SH: &str = r#"
st() { grep "^$1:" /proc/self/status | tr -d ' \t' | cut -d: -f2; }
opts() { awk -v m="$1" '$2 == m { o = $4 } END { print o }' /proc/mounts; }
echo uid=$(id -u)
echo gid=$(id -g)
for k in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp; do echo $k=$(st $k); done
echo root_mount=$(opts / | cut -d, -f1)
touch /rwtest/probe 2>/dev/null && echo rootfs_write=ok || echo rootfs_write=fail
touch /tmp/probe 2>/dev/null && echo tmp_write=ok || echo tmp_write=fail
echo ro_read=$(cat "$1/f" 2>/dev/null)
echo ro-probe > "$1/f" 2>/dev/null && echo ro_write=ok || echo ro_write=fail
echo ro-new > "$1/new-$$" 2>/dev/null && echo ro_create=ok || echo ro_create=fail
touch "$1/sub/new-$$" 2>/dev/null && echo sub_create=ok || echo sub_create=fail
echo "rw-$$" > "$2/out-$$" 2>/dev/null && echo rw_write=ok || echo rw_write=fail
echo conf_read=$(cat "$3" 2>/dev/null)
echo conf-probe > "$3" 2>/dev/null && echo conf_write=ok || echo conf_write=fail
ls "$4" >/dev/null 2>&1 && echo undeclared=visible || echo undeclared=absent
echo passwd_lines=$(wc -l < /etc/passwd)
echo net=$(ls /sys/class/net | tr '\n' ,)
echo secret=${CAPGATE_SECRET-unset}
echo env_keys=$(env | cut -d= -f1 | sort | tr '\n' ,)
echo interrupts_bytes=$(wc -c < /proc/interrupts 2>/dev/null)
echo firmware_mount=$(opts /sys/firmware | cut -d, -f1)
echo proc_sys=$(opts /proc/sys | cut -d, -f1)
echo sys_mount=$(opts /sys | cut -d, -f1)
unshare -U true 2>/dev/null && echo userns=ok || echo userns=fail
echo tmp_kb=$(df -k /tmp | awk 'NR==2 {print $2}')
echo shm_kb=$(df -k /dev/shm | awk 'NR==2 {print $2}')
if [ "$5" = spawn ]; then
  ( n=0; while [ $n -lt 300 ]; do sleep 30 & n=$((n+1)); echo $n > /tmp/spawned; done ) 2>/dev/null
  echo spawned=$(cat /tmp/spawned)
fi
echo done=1
"#;

/// A bundle's rootfs: a static busybox and its applets, /etc/passwd with two
/// users, and /rwtest (1777) so that only a read-only root can refuse a write.
fn rootfs(dir: &Path) {
    for (d, mode) in [
        ("", 0o755),
        ("bin", 0o755),
        ("etc", 0o755),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("rwtest", 0o1777),
    ] {
        let p = dir.join(d);
        std::fs::create_dir_all(&p).unwrap();
        chmod(&p, mode);
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("enforcement");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(static_busybox(&work), dir.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
}

/// `runc delete -f` on drop: the container is gone even when the test panics.
struct Container {
    root: PathBuf,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "-f", &self.id])
            .output();
    }
}

/// Runs `config` (the compiled config, with process.args replaced by the probe: the
/// only change the harness makes) under `runc run` in its own bundle, with a host
/// environment holding a secret, and returns the probe's `key=value` lines.
fn probe(base: &Path, label: &str, config: &Value, args: &[String]) -> BTreeMap<String, String> {
    let bundle = base.join(format!("bundle-{label}"));
    std::fs::create_dir_all(&bundle).unwrap();
    let mut config = config.clone();
    let mut argv = vec![json!("/bin/sh"), json!("-c"), json!(PROBE_SH), json!("sh")];
    argv.extend(args.iter().map(|a| json!(a)));
    config["process"]["args"] = Value::Array(argv);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let guard = Container {
        root: base.join("runc-state"),
        id: unique(),
    };
    let mut c = Command::new("runc");
    c.arg("--root")
        .arg(&guard.root)
        .args(["run", "--bundle", &s(&bundle), &guard.id])
        .env("CAPGATE_SECRET", SECRET);
    let out = run(&mut c, Duration::from_secs(60));
    let facts = kv(&String::from_utf8_lossy(&out.stdout));
    assert!(
        facts.contains_key("done"),
        "runc probe `{label}` did not finish ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    facts
}

/// A tmpfs mounted on the host below a declared read-only path, unmounted on drop.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(dir: &Path) -> HostTmpfs {
        ok(&mut cmd(
            "mount",
            &["-t", "tmpfs", "-o", "size=1m,mode=1777", &unique(), &s(dir)],
        ));
        HostTmpfs(dir.to_owned())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn get<'a>(f: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("<missing>")
}

#[test]
fn oci_config_under_runc() {
    if !require(
        "oci_config_under_runc",
        &["runc", "ip", "mount", "umount"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("oci-runc");
    // 0777/0666: only the mounts may refuse writes, never file permissions.
    let project = root.dir("project", 0o777);
    let ro_file = root.file("project/f", "project-data\n", 0o666);
    let out = root.dir("project/out", 0o777);
    let conf = root.file("etc/app.conf", "conf\n", 0o666);
    let undeclared = root.dir("undeclared", 0o777);
    // A host mount below the read-only path: `rro` must make it read-only too.
    // Dropped before `root` (reverse order of declaration).
    let _submount = HostTmpfs::mount(&root.dir("project/sub", 0o777));
    root.file("undeclared/secret", "host-only\n", 0o666);
    rootfs(&root.join("rootfs"));
    let manifest = relocate(&fixture("fixtures/enforcement/container.json"), &root.path);
    // The rootfs is shared by every bundle: option rootfs, an absolute path.
    let rootfs_path = s(&root.join("rootfs"));
    let text = config(&compile(
        "container.json",
        &manifest,
        "oci",
        false,
        &[("rootfs", &rootfs_path)],
    ));
    let policy: Value = serde_json::from_str(&text).unwrap();

    // A namespace with an interface besides lo, for the joined-network control.
    let spare = Netns::new();
    let id = short();
    spare.ip(&[
        "link",
        "add",
        &format!("oa{id}"),
        "type",
        "veth",
        "peer",
        "name",
        &format!("ob{id}"),
    ]);
    let args: Vec<String> = [&project, &out, &conf, &undeclared]
        .iter()
        .map(|p| s(p))
        .collect();
    let with = |a: &[String], spawn: bool| -> Vec<String> {
        let mut v = a.to_vec();
        v.push(if spawn { "spawn" } else { "-" }.to_owned());
        v
    };
    // The policy alone first, so that no control (which may write where the
    // policy must not) can disturb the host-side checks.
    let f = probe(&root.path, "policy", &policy, &with(&args, true));
    let ro_after = read(&ro_file);
    let conf_after = read(&conf);
    let rw_after: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter_map(|e| read(&e.path()))
        .collect();
    let ro_entries = std::fs::read_dir(&project).unwrap().count();

    let ro_path = s(&project);
    let ro_path2 = ro_path.clone();
    let spare_path = spare.path();
    type Mutation = Box<dyn Fn(&mut Value) + Sync>;
    let controls: Vec<(&str, Mutation, bool)> = vec![
        (
            "writable rootfs",
            Box::new(|c| c["root"]["readonly"] = json!(false)),
            false,
        ),
        (
            "ro bind without rro",
            Box::new(move |c| {
                for m in c["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == json!(ro_path) {
                        m["options"] = json!(["rbind", "rw", "nosuid", "nodev"]);
                    }
                }
            }),
            false,
        ),
        (
            "ro instead of rro",
            Box::new(move |c| {
                for m in c["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == json!(ro_path2) {
                        m["options"] = json!(["rbind", "ro", "rprivate", "nosuid", "nodev"]);
                    }
                }
            }),
            false,
        ),
        (
            "runc's default capabilities",
            Box::new(|c| {
                let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
                for set in ["bounding", "effective", "permitted"] {
                    c["process"]["capabilities"][set] = caps.clone();
                }
            }),
            false,
        ),
        (
            "no noNewPrivileges",
            Box::new(|c| c["process"]["noNewPrivileges"] = json!(false)),
            false,
        ),
        (
            "uid 0",
            Box::new(|c| c["process"]["user"] = json!({"uid": 0, "gid": 0})),
            false,
        ),
        (
            "joined network namespace",
            Box::new(move |c| {
                for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
                    if ns["type"] == "network" {
                        ns["path"] = json!(spare_path);
                    }
                }
            }),
            false,
        ),
        (
            "no maskedPaths",
            Box::new(|c| c["linux"]["maskedPaths"] = json!([])),
            false,
        ),
        (
            "no readonlyPaths",
            Box::new(|c| c["linux"]["readonlyPaths"] = json!([])),
            false,
        ),
        (
            "writable sysfs",
            Box::new(|c| {
                for m in c["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == "/sys" {
                        m["options"] = json!(["nosuid", "noexec", "nodev"]);
                    }
                }
            }),
            false,
        ),
        (
            "no seccomp",
            Box::new(|c| {
                c["linux"].as_object_mut().unwrap().remove("seccomp");
            }),
            false,
        ),
        (
            "pids limit 1024",
            Box::new(|c| c["linux"]["resources"]["pids"]["limit"] = json!(1024)),
            true,
        ),
    ];
    let facts: Vec<BTreeMap<String, String>> = thread::scope(|sc| {
        let handles: Vec<_> = controls
            .iter()
            .enumerate()
            .map(|(i, (_, mutate, spawn))| {
                let mut c = policy.clone();
                mutate(&mut c);
                let a = with(&args, *spawn);
                let base = &root.path;
                sc.spawn(move || probe(base, &format!("control-{i}"), &c, &a))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ctl = |name: &str| &facts[controls.iter().position(|(n, _, _)| *n == name).unwrap()];
    let mut c = Checks::new();

    // read-only rootfs (probed in a 1777 dir, and in /proc/mounts)
    c.eq("rootfs not writable", get(&f, "rootfs_write"), "fail");
    c.eq("rootfs mounted ro", get(&f, "root_mount"), "ro");
    c.eq(
        "control: rootfs writable",
        get(ctl("writable rootfs"), "rootfs_write"),
        "ok",
    );
    c.eq("/tmp tmpfs writable", get(&f, "tmp_write"), "ok");
    c.eq("/tmp is 64 MiB", get(&f, "tmp_kb"), "65536");
    c.eq("/dev/shm is 64 MiB", get(&f, "shm_kb"), "65536");

    // declared paths
    c.eq("ro bind readable", get(&f, "ro_read"), "project-data");
    c.eq("ro bind: file not writable", get(&f, "ro_write"), "fail");
    c.eq("ro bind: no new files", get(&f, "ro_create"), "fail");
    c.eq(
        "ro file unchanged on the host",
        ro_after.as_deref(),
        Some("project-data\n"),
    );
    c.eq(
        "no new entries in the ro dir on the host (f, out, sub)",
        ro_entries,
        3,
    );
    c.eq(
        "host submount below the ro bind not writable",
        get(&f, "sub_create"),
        "fail",
    );
    c.eq(
        "control: `ro` (not `rro`) leaves the submount writable",
        get(ctl("ro instead of rro"), "sub_create"),
        "ok",
    );
    c.eq(
        "control: writable without rro",
        get(ctl("ro bind without rro"), "ro_create"),
        "ok",
    );
    c.eq("rw child bind writable", get(&f, "rw_write"), "ok");
    c.check(
        "rw write visible on the host",
        rw_after.len() == 1 && rw_after[0].starts_with("rw-"),
        || format!("{rw_after:?}"),
    );
    c.eq("bound file readable", get(&f, "conf_read"), "conf");
    c.eq("bound file not writable", get(&f, "conf_write"), "fail");
    c.eq(
        "bound file unchanged on the host",
        conf_after.as_deref(),
        Some("conf\n"),
    );

    // undeclared host paths
    c.eq(
        "undeclared sibling dir absent",
        get(&f, "undeclared"),
        "absent",
    );
    c.eq("/etc/passwd is the rootfs's", get(&f, "passwd_lines"), "2");

    // network
    c.eq("only lo", get(&f, "net"), "lo,");
    let joined = get(ctl("joined network namespace"), "net");
    c.check(
        "control: a joined namespace shows more than lo",
        joined.contains(&format!("oa{id}")),
        || joined.to_owned(),
    );

    // environment: exactly the config's (the host adds declared values; this test adds none)
    c.eq("host secret not leaked", get(&f, "secret"), "unset");
    c.check(
        "environment holds no host variable",
        !get(&f, "env_keys").contains("CARGO") && get(&f, "env_keys").contains("PATH,"),
        || get(&f, "env_keys").to_owned(),
    );

    // privileges
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        c.eq(&format!("{k} empty"), get(&f, k), "0000000000000000");
    }
    let caps = ctl("runc's default capabilities");
    c.check(
        "control: bounding set non-empty with capabilities",
        get(caps, "CapBnd") != "0000000000000000",
        || get(caps, "CapBnd").to_owned(),
    );
    c.eq("NoNewPrivs 1", get(&f, "NoNewPrivs"), "1");
    c.eq(
        "control: NoNewPrivs 0",
        get(ctl("no noNewPrivileges"), "NoNewPrivs"),
        "0",
    );
    c.eq("uid 65534", get(&f, "uid"), "65534");
    c.eq("gid 65534", get(&f, "gid"), "65534");
    c.eq("control: uid 0", get(ctl("uid 0"), "uid"), "0");

    // /proc and /sys. Which masked paths exist depends on the kernel (this CI
    // kernel has no /proc/kcore, and /proc/timer_list is root-only): probe a
    // world-readable file every kernel has, and a directory.
    c.eq(
        "/proc/interrupts masked (empty)",
        get(&f, "interrupts_bytes"),
        "0",
    );
    c.check(
        "control: /proc/interrupts readable without maskedPaths",
        get(ctl("no maskedPaths"), "interrupts_bytes")
            .parse::<u64>()
            .is_ok_and(|n| n > 0),
        || get(ctl("no maskedPaths"), "interrupts_bytes").to_owned(),
    );
    c.eq(
        "/sys/firmware masked by a read-only mount",
        get(&f, "firmware_mount"),
        "ro",
    );
    c.eq(
        "control: /sys/firmware not masked",
        get(ctl("no maskedPaths"), "firmware_mount"),
        "",
    );
    c.eq("/sys mounted read-only", get(&f, "sys_mount"), "ro");
    c.eq(
        "control: /sys writable",
        get(ctl("writable sysfs"), "sys_mount"),
        "rw",
    );
    c.eq("/proc/sys read-only", get(&f, "proc_sys"), "ro");
    c.eq(
        "control: /proc/sys not remounted",
        get(ctl("no readonlyPaths"), "proc_sys"),
        "",
    );

    // seccomp
    c.eq("seccomp filter mode", get(&f, "Seccomp"), "2");
    c.eq("no user namespace", get(&f, "userns"), "fail");
    c.eq(
        "control: user namespace without seccomp",
        get(ctl("no seccomp"), "userns"),
        "ok",
    );

    // pids limit
    let spawned: u32 = get(&f, "spawned").parse().unwrap_or(0);
    c.check(
        "fork stops near the pids limit (256)",
        (200..256).contains(&spawned),
        || format!("spawned {spawned}"),
    );
    c.eq(
        "control: 300 processes with limit 1024",
        get(ctl("pids limit 1024"), "spawned"),
        "300",
    );

    drop(spare);
    c.finish("oci_config_under_runc");
}

// ------------------------------------------------------------------ socket binds

/// Runs `config` with process.args replaced by `script` (busybox sh) under `runc run`;
/// returns the output, whether or not the container started.
fn run_script(base: &Path, label: &str, config: &Value, script: &str) -> std::process::Output {
    let bundle = base.join(format!("bundle-{label}"));
    std::fs::create_dir_all(&bundle).unwrap();
    let mut config = config.clone();
    config["process"]["args"] = json!(["/bin/sh", "-c", script]);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let guard = Container {
        root: base.join("runc-state"),
        id: unique(),
    };
    let mut c = Command::new("runc");
    c.arg("--root")
        .arg(&guard.root)
        .args(["run", "--bundle", &s(&bundle), &guard.id]);
    run(&mut c, Duration::from_secs(60))
}

fn manifest(caps: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "name": "socket-binds", "version": "1.0.0",
        "tools": [{ "name": "t", "capabilities": caps }]
    }))
    .unwrap()
}

fn sources(config: &Value) -> Vec<String> {
    config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["source"].as_str().unwrap().to_owned())
        .collect()
}

/// A socket inside a declared fs path is reached through that path's bind, never
/// bound again: a second bind of a path inside a writable mount would follow
/// whatever the container left there. Compile-level; the runc test below runs it.
#[test]
fn oci_socket_inside_a_declared_path_gets_no_mount_of_its_own() {
    let compile = |caps: &[&str]| -> (Value, Vec<String>) {
        let caps: Vec<String> = caps.iter().map(|c| (*c).to_owned()).collect();
        let compiler =
            capgate::compile::Compiler::new(&capgate::assets::Assets::default(), "oci").unwrap();
        let out = compiler
            .compile(
                "m.json",
                &manifest(&caps),
                &capgate::compile::Settings {
                    permissive: false,
                    set: vec![],
                },
            )
            .unwrap_or_else(|d| panic!("{caps:?}: {}", d[0].render()));
        let text = serde_json::to_value(&out.artifact).unwrap();
        let notes = text["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
        (serde_json::from_str(&config(&out.artifact)).unwrap(), notes)
    };
    for (caps, under) in [
        (
            &[
                "fs:read,write,create,delete:/srv/w/**",
                "ipc:connect:\"unix:/srv/w/run/app.sock\"",
            ][..],
            "/srv/w",
        ),
        (
            &[
                "fs:read,write:/srv/w",
                "ipc:connect:\"unix:/srv/w/app.sock\"",
            ][..],
            "/srv/w",
        ),
        (
            &["fs:read:/srv/r/*", "ipc:connect:\"unix:/srv/r/app.sock\""][..],
            "/srv/r",
        ),
        // The alias: the bind of /var/run/app is the host's /run/app.
        (
            &[
                "fs:read,write:/var/run/app",
                "ipc:connect:\"unix:/run/app/app.sock\"",
            ][..],
            "/var/run/app",
        ),
        (
            &["fs:read,write,create,delete:/tmp", "ipc:connect:x11"][..],
            "/tmp",
        ),
    ] {
        let (config, notes) = compile(caps);
        let socket = caps[1].trim_start_matches("ipc:connect:").trim_matches('"');
        let socket = socket.strip_prefix("unix:").unwrap_or("/tmp/.X11-unix/X0");
        assert!(
            !sources(&config)
                .iter()
                .any(|s| s == socket || s == "/dev/null"),
            "{caps:?}: the socket has a mount of its own: {:?}",
            sources(&config)
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&format!("the bind of \"{under}\""))),
            "{caps:?}: {notes:?}"
        );
    }
    // Not inside a declared path: the socket is bound, over a bind of /dev/null
    // (a directory in its place fails the start), and the note says a regular
    // file would be readable.
    let (config, notes) = compile(&["fs:read:/srv/other", "ipc:connect:\"unix:/srv/w/app.sock\""]);
    let mounts = config["mounts"].as_array().unwrap();
    let at: Vec<&Value> = mounts
        .iter()
        .filter(|m| m["destination"] == json!("/srv/w/app.sock"))
        .collect();
    assert_eq!(at.len(), 2, "{at:?}");
    assert_eq!(at[0]["source"], json!("/dev/null"));
    assert_eq!(at[1]["source"], json!("/srv/w/app.sock"));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("a regular file there would be readable")),
        "{notes:?}"
    );
}

/// Under runc: (1) a container with a writable directory plants a symlink where a
/// socket of a later manifest is declared; the later config must not mount what the
/// symlink names (a host directory nobody declared). (2) A `unix:` path that is a
/// directory must not be mounted (its whole tree would be readable). (3) A real
/// socket is still bound. Each with the control of the config as it was before.
#[test]
fn oci_socket_binds_under_runc() {
    if !require("oci_socket_binds_under_runc", &["runc"], true) {
        return;
    }
    let root = TempDir::new("oci-sockets");
    let w = root.dir("w", 0o777);
    let secret = root.dir("secret", 0o755);
    root.file("secret/s.txt", "undeclared-host-dir\n", 0o644);
    let sockd = root.dir("sockd", 0o755);
    let sock = sockd.join("app.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    chmod(&sock, 0o777);
    rootfs(&root.join("rootfs"));
    let rootfs_path = s(&root.join("rootfs"));
    let set = [("rootfs", rootfs_path.as_str())];
    let compile = |caps: &[String]| -> Value {
        serde_json::from_str(&compile_oci("m.json", &manifest(caps), &set).unwrap()).unwrap()
    };
    let (w, secret, sock) = (s(&w), s(&secret), s(&sock));
    let planted = format!("{w}/app.sock");
    let mut c = Checks::new();

    // (1) The first server version may write /w; it leaves a symlink.
    let writer = compile(&[format!("fs:read,write,create,delete:{w}")]);
    let out = run_script(
        &root.path,
        "plant",
        &writer,
        &format!("ln -s {secret} {planted} && echo planted=1"),
    );
    c.eq(
        "the container plants a symlink",
        String::from_utf8_lossy(&out.stdout).trim(),
        "planted=1",
    );
    // The next one also declares a socket there.
    let policy = compile(&[
        format!("fs:read,write,create,delete:{w}"),
        format!("ipc:connect:\"unix:{planted}\""),
    ]);
    let leak = format!("cat {secret}/s.txt {planted}/s.txt 2>/dev/null; echo done=1");
    let got = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let f = got(&run_script(&root.path, "swap", &policy, &leak));
    c.check(
        "the planted symlink is not followed",
        f.contains("done=1") && !f.contains("undeclared-host-dir"),
        || f.clone(),
    );
    // Control: the socket bound on its own, as before.
    let mut ctl = policy.clone();
    ctl["mounts"].as_array_mut().unwrap().push(json!({
        "destination": planted, "type": "bind", "source": planted,
        "options": ["bind", "ro", "rprivate", "nosuid", "nodev"]
    }));
    let f = got(&run_script(&root.path, "swap-control", &ctl, &leak));
    c.check(
        "control: a bind of the socket follows the symlink",
        f.contains("undeclared-host-dir"),
        || f.clone(),
    );

    // (2) A `unix:` path that is a directory.
    let policy = compile(&[format!("ipc:connect:\"unix:{secret}\"")]);
    let read = format!("cat {secret}/s.txt 2>/dev/null; echo done=1");
    let out = run_script(&root.path, "dir", &policy, &read);
    c.check(
        "a directory in the socket's place fails the start",
        !out.status.success() && !got(&out).contains("undeclared-host-dir"),
        || format!("{out:?}"),
    );
    let mut ctl = policy.clone();
    ctl["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["source"] != json!("/dev/null"));
    let f = got(&run_script(&root.path, "dir-control", &ctl, &read));
    c.check(
        "control: without /dev/null below it the directory is readable",
        f.contains("undeclared-host-dir"),
        || f.clone(),
    );

    // (3) A socket is still bound.
    let policy = compile(&[format!("ipc:connect:\"unix:{sock}\"")]);
    let f = got(&run_script(
        &root.path,
        "socket",
        &policy,
        &format!("echo type=$(stat -c %F {sock})"),
    ));
    c.eq("a socket is bound", f.trim(), "type=socket");
    c.finish("oci_socket_binds_under_runc");
}

/// Runs the compiled bwrap policy (through its launcher) and checks that the
/// sandbox cannot read the host's /etc/passwd; then, as control, the same
/// policy with `--ro-bind-try SOURCE SOURCE` added, which must mount the
/// host's /etc through the symlink planted at SOURCE.
fn etc_hidden_unless_bound(artifact: &capgate::artifact::Artifact, source: &str) {
    let (policy, _) = argv(artifact);
    let launcher = launcher(artifact);
    let probe = |argv: &[String]| -> String {
        let mut c = bwrap_command(&launcher, argv);
        c.args([
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/passwd 2>/dev/null | wc -l; echo done",
        ]);
        let out = run(&mut c, Duration::from_secs(30));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let f = probe(&policy);
    assert!(
        f.contains("done") && f.lines().next().map(str::trim) == Some("0"),
        "bwrap: the host's /etc is visible: {f}"
    );
    let mut ctl = policy.clone();
    let at = ctl.iter().position(|a| a == "--clearenv").unwrap();
    ctl.splice(
        at..at,
        [
            "--ro-bind-try".to_owned(),
            source.to_owned(),
            source.to_owned(),
        ],
    );
    let f = probe(&ctl);
    assert!(
        f.lines().next().map(str::trim) != Some("0"),
        "control: the bind of {source} should mount the host's /etc: {f}"
    );
}

/// The same attack on the bwrap and docker targets, which bound the socket again
/// inside the writable bind too (`--ro-bind-try` / `--mount ...,readonly`): a
/// relative symlink the sandbox leaves in the socket's place (`../../../../etc`)
/// resolves to the same path on the host and in the new root, so bwrap mounted the
/// host's /etc. Compile-level for docker; under bwrap (as root, through the
/// artifact's launcher) for bwrap, with the old `--ro-bind-try` as control.
#[test]
fn socket_inside_a_writable_path_bwrap_and_docker() {
    let compiler = |target: &str| {
        capgate::compile::Compiler::new(&capgate::assets::Assets::default(), target).unwrap()
    };
    let settings = capgate::compile::Settings {
        permissive: false,
        set: vec![],
    };
    for target in ["bwrap", "docker"] {
        let out = compiler(target)
            .compile(
                "m.json",
                &manifest(&[
                    "fs:read,write,create,delete:/srv/w".to_owned(),
                    "ipc:connect:\"unix:/srv/w/app.sock\"".to_owned(),
                ]),
                &settings,
            )
            .unwrap();
        let (argv, _) = argv(&out.artifact);
        assert!(
            !argv.iter().any(|a| a.contains("/srv/w/app.sock")),
            "{target}: the socket is bound on its own: {argv:?}"
        );
    }
    if !require(
        "socket_inside_a_writable_path_bwrap_and_docker",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("bwrap-sockets");
    let w = root.dir("w", 0o777);
    let w_s = s(&w);
    let depth = w.components().count() - 1;
    let up = "../".repeat(depth);
    std::os::unix::fs::symlink(format!("{up}etc"), w.join("app.sock")).unwrap();
    let out = compiler("bwrap")
        .compile(
            "m.json",
            &manifest(&[
                format!("fs:read,write,create,delete:{w_s}"),
                format!("ipc:connect:\"unix:{w_s}/app.sock\""),
            ]),
            &settings,
        )
        .unwrap();
    etc_hidden_unless_bound(&out.artifact, &format!("{w_s}/app.sock"));
}

/// A host directory below /run, removed on drop.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two spellings of one host path (`/var/run/X` is `/run/X`, `/lib/X` is `/usr/lib/X` on
/// a merged-/usr host): a read-only path declared under one spelling inside a writable
/// path declared under the other is folded into it, like any read-only path inside a
/// writable one. Bound on its own, it followed the symlink a container left in the
/// writable directory (an undeclared host directory was mounted). Under runc, for each
/// link this host has, in both directions, with the control of the read-only bind added
/// back.
#[test]
fn oci_alias_spelling_under_runc() {
    if !require("oci_alias_spelling_under_runc", &["runc"], true) {
        return;
    }
    let mut c = Checks::new();
    for (alias, real) in [("/var/run", "/run"), ("/lib", "/usr/lib")] {
        // A missing link is a skip like a missing tool: loud here, a failure in CI.
        if std::fs::canonicalize(alias).ok().as_deref() != Some(Path::new(real)) {
            skip(
                "oci_alias_spelling_under_runc",
                &format!("{alias} is not a link to {real} on this host"),
            );
            continue;
        }
        for (writable_root, readonly_root) in [(alias, real), (real, alias)] {
            alias_case(&mut c, real, writable_root, readonly_root);
        }
    }
    c.finish("oci_alias_spelling_under_runc");
}

/// One direction of [`oci_alias_spelling_under_runc`]: `writable_root/X` writable,
/// `readonly_root/X/sub` read-only, the host directory created under `real`.
fn alias_case(c: &mut Checks, real: &str, writable_root: &str, readonly_root: &str) {
    let case = format!("{writable_root} writable, {readonly_root} read-only");
    let root = TempDir::new("oci-alias");
    let secret = s(&root.dir("secret", 0o755));
    root.file("secret/s.txt", "undeclared-host-dir\n", 0o644);
    let name = format!("capgate-{}", unique());
    let run_dir = RunDir(PathBuf::from(real).join(&name));
    std::fs::create_dir(&run_dir.0).unwrap();
    chmod(&run_dir.0, 0o777);
    rootfs(&root.join("rootfs"));
    let rootfs_path = s(&root.join("rootfs"));
    let set = [("rootfs", rootfs_path.as_str())];
    let compile = |caps: &[String]| -> Value {
        serde_json::from_str(&compile_oci("m.json", &manifest(caps), &set).unwrap()).unwrap()
    };
    let writable = format!("fs:read,write,create,delete:{writable_root}/{name}");
    let sub = format!("{readonly_root}/{name}/sub");
    let out = run_script(
        &root.path,
        "plant",
        &compile(std::slice::from_ref(&writable)),
        &format!("ln -s {secret} {writable_root}/{name}/sub && echo planted=1"),
    );
    c.eq(
        &format!("{case}: the container plants a symlink"),
        String::from_utf8_lossy(&out.stdout).trim(),
        "planted=1",
    );
    let policy = compile(&[writable, format!("fs:read:{sub}")]);
    c.check(
        &format!("{case}: one bind, the read-only path folded into the writable one"),
        !sources(&policy).contains(&sub),
        || format!("{:?}", sources(&policy)),
    );
    let leak = format!("cat {sub}/s.txt {secret}/s.txt 2>/dev/null; echo done=1");
    let got = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let f = got(&run_script(&root.path, "alias", &policy, &leak));
    c.check(
        &format!("{case}: the planted symlink is not followed"),
        f.contains("done=1") && !f.contains("undeclared-host-dir"),
        || f.clone(),
    );
    let mut ctl = policy.clone();
    ctl["mounts"].as_array_mut().unwrap().push(json!({
        "destination": sub, "type": "bind", "source": sub,
        "options": ["rbind", "rro", "rprivate", "nosuid", "nodev"]
    }));
    let f = got(&run_script(&root.path, "alias-control", &ctl, &leak));
    c.check(
        &format!("{case}: control, a bind of the read-only spelling follows the symlink"),
        f.contains("undeclared-host-dir"),
        || f.clone(),
    );
}

// ------------------------------------------------------------------ seccomp

/// The seccomp templates are what scripts/oci-seccomp.py generates from the docker
/// target's profile (so a change to that profile cannot leave the oci target behind).
#[test]
fn seccomp_templates_match_the_docker_profile() {
    let python = python();
    let out = run(
        Command::new(&python)
            .arg(repo().join("scripts/oci-seccomp.py"))
            .arg("--check"),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without nestedSandbox the compiled filter allows clone and unshare only without
/// CLONE_NEWUSER, setns only to an explicit non-user namespace type, never clone3,
/// and refuses whatever it does not name; with it, the four are allowed and a note
/// says so. (The runc test checks `unshare -U` for real.)
#[test]
fn seccomp_allows_user_namespaces_only_with_nested_sandbox() {
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    let manifest = |caps: &[&str]| {
        json!({"name": "s", "version": "1", "tools": [{"name": "t", "capabilities": caps}]})
            .to_string()
    };
    let plain: Value =
        serde_json::from_str(&compile_oci("plain.json", manifest(&[]).as_bytes(), &[]).unwrap())
            .unwrap();
    let seccomp = &plain["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    let mut c = Checks::new();
    let mut seen = BTreeMap::<String, usize>::new();
    for entry in seccomp["syscalls"].as_array().expect("syscalls") {
        let allow = entry["action"] == "SCMP_ACT_ALLOW";
        let args: Vec<&Value> = entry["args"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for name in entry["names"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n.as_str())
        {
            if !["clone", "clone3", "unshare", "setns"].contains(&name) {
                continue;
            }
            *seen.entry(name.to_owned()).or_default() += 1;
            if !allow {
                continue;
            }
            let ok = match name {
                "clone" | "unshare" => args.iter().any(|a| {
                    a["op"] == "SCMP_CMP_MASKED_EQ"
                        && a["index"] == 0
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

    let compiler =
        capgate::compile::Compiler::new(&capgate::assets::Assets::default(), "oci").unwrap();
    let out = compiler
        .compile(
            "nested.json",
            manifest(&["exec:spawn:chromium?nestedSandbox=true"]).as_bytes(),
            &capgate::compile::Settings {
                permissive: false,
                set: vec![],
            },
        )
        .unwrap();
    let nested: Value = serde_json::from_str(&config(&out.artifact)).unwrap();
    let opened = nested["linux"]["seccomp"]["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| {
            e["action"] == "SCMP_ACT_ALLOW"
                && e.get("args").is_none()
                && e["names"] == json!(["clone", "clone3", "setns", "unshare"])
        });
    c.check(
        "nestedSandbox: clone, clone3, setns, unshare allowed",
        opened,
        || nested["linux"]["seccomp"].to_string(),
    );
    let notes = serde_json::to_string(&out.artifact).unwrap_or_default();
    c.check(
        "nestedSandbox: a note says user namespaces are allowed",
        notes.contains("may create user namespaces"),
        || notes.clone(),
    );
    c.finish("seccomp_allows_user_namespaces_only_with_nested_sandbox");
}

/// The memory limit and its swap twin, read from the host: the container has no
/// cgroup filesystem. `(limit, swap)` as cgroup v1 (`memory.limit_in_bytes`,
/// `memory.memsw.limit_in_bytes`) or v2 (`memory.max`, `memory.swap.max`) shows them.
fn memory_of(pid: &str) -> (String, String) {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let file = |dir: &str, name: &str| {
        std::fs::read_to_string(format!("{dir}/{name}"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|e| format!("<{dir}/{name}: {e}>"))
    };
    if let Some(path) = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()))
    {
        let dir = format!("/sys/fs/cgroup/memory{path}");
        return (
            file(&dir, "memory.limit_in_bytes"),
            file(&dir, "memory.memsw.limit_in_bytes"),
        );
    }
    let path = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    let dir = format!("/sys/fs/cgroup{path}");
    (file(&dir, "memory.max"), file(&dir, "memory.swap.max"))
}

/// Runs `config` with `sleep 10` and returns the memory cgroup limits of its process.
fn memory_under_runc(base: &Path, label: &str, config: &Value) -> (String, String) {
    let bundle = base.join(format!("bundle-{label}"));
    std::fs::create_dir_all(&bundle).unwrap();
    let mut config = config.clone();
    config["process"]["args"] = json!(["/bin/sleep", "10"]);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let guard = Container {
        root: base.join("runc-state"),
        id: unique(),
    };
    let mut c = Command::new("runc");
    c.arg("--root")
        .arg(&guard.root)
        .args(["run", "--bundle", &s(&bundle), &guard.id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let _runc = Proc::spawn(label, &mut c);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let state = Command::new("runc")
            .arg("--root")
            .arg(&guard.root)
            .args(["state", &guard.id])
            .output()
            .unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&state.stdout) {
            if v["status"] == "running" {
                if let Some(pid) = v["pid"].as_u64().filter(|p| *p > 0) {
                    return memory_of(&pid.to_string());
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{label}: the container did not start: {}",
            String::from_utf8_lossy(&state.stderr)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// option memory=64m is the container's memory limit, with no swap beyond it;
/// the control without linux.resources.memory is unlimited.
#[test]
fn oci_memory_limit_under_runc() {
    if !require("oci_memory_limit_under_runc", &["runc"], true) {
        return;
    }
    let root = TempDir::new("oci-mem");
    rootfs(&root.join("rootfs"));
    let rootfs_path = s(&root.join("rootfs"));
    let empty = fixture("fixtures/manifests/empty.json");
    let text = config(&compile(
        "empty.json",
        &empty,
        "oci",
        false,
        &[("rootfs", &rootfs_path), ("memory", "64m")],
    ));
    let policy: Value = serde_json::from_str(&text).unwrap();
    let mut unlimited = policy.clone();
    unlimited["linux"]["resources"]
        .as_object_mut()
        .unwrap()
        .remove("memory");
    let (limit, swap) = memory_under_runc(&root.path, "policy", &policy);
    let (ctl_limit, _) = memory_under_runc(&root.path, "control", &unlimited);
    let mut c = Checks::new();
    c.eq("memory limit is 64 MiB", limit.as_str(), "67108864");
    c.check(
        "no swap beyond the limit",
        swap == "67108864" || swap == "0",
        || swap.clone(),
    );
    c.check(
        "control: no limit without linux.resources.memory",
        ctl_limit != "67108864"
            && (ctl_limit == "max" || ctl_limit.parse::<u64>().is_ok_and(|n| n > 1 << 40)),
        || ctl_limit.clone(),
    );
    c.finish("oci_memory_limit_under_runc");
}

/// An X display's socket under a declared /tmp: `/tmp/.X11-unix` is 1777, so
/// a sandbox that can write /tmp can create a display that is not running as
/// a relative symlink (`X<n>` -> `../../etc`), and a bind of `X<n>` of its
/// own was walked through it at the next start: bwrap mounted the host's /etc.
/// bwrap, docker and systemd now reach the display through the /tmp bind
/// (rules `*.ipc.x11-covered`); under bwrap, with the old `--ro-bind-try` of
/// the display as control. The symlink is made in the host's /tmp/.X11-unix
/// for an unused display number and removed at the end.
#[test]
fn x11_display_under_a_writable_tmp_gets_no_bind_of_its_own() {
    let display = 4000 + std::process::id() % 1000;
    let settings = capgate::compile::Settings {
        permissive: false,
        set: vec![("x11_display".to_owned(), display.to_string())],
    };
    let m = manifest(&[
        "fs:read,write,create,delete:/tmp/**".to_owned(),
        "ipc:connect:x11".to_owned(),
    ]);
    let socket = format!("/tmp/.X11-unix/X{display}");
    for target in ["bwrap", "docker", "systemd"] {
        let out = capgate::compile::Compiler::new(&capgate::assets::Assets::default(), target)
            .unwrap()
            .compile("m.json", &m, &settings)
            .unwrap();
        let json = out.artifact.to_json(false);
        assert!(
            !json.contains(&socket),
            "{target}: the display is bound on its own: {json}"
        );
    }
    if !require(
        "x11_display_under_a_writable_tmp_gets_no_bind_of_its_own",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    struct Planted(PathBuf, bool);
    impl Drop for Planted {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            if self.1 {
                let _ = std::fs::remove_dir(self.0.parent().unwrap());
            }
        }
    }
    let dir = Path::new("/tmp/.X11-unix");
    let made_dir = !dir.exists();
    if made_dir {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .unwrap();
    }
    let planted = Planted(PathBuf::from(&socket), made_dir);
    std::os::unix::fs::symlink("../../etc", &planted.0).unwrap();
    let out = capgate::compile::Compiler::new(&capgate::assets::Assets::default(), "bwrap")
        .unwrap()
        .compile("m.json", &m, &settings)
        .unwrap();
    etc_hidden_unless_bound(&out.artifact, &socket);
    drop(planted);
}
