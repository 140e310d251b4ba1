//! The `kubernetes` target, for every fixture manifest:
//! - the Pod and the NetworkPolicy pass `kubernetes-validate --strict -k 1.33.0` (PyPI,
//!   pinned in .ci/run; it bundles the Kubernetes schemas and runs offline), one document
//!   at a time, each reported as passed;
//! - the CiliumNetworkPolicy passes Cilium's own CRD schema (tests/data/cilium, see its
//!   PROVENANCE.md) with python3 `jsonschema`, every object closed the way the API server's
//!   strict field validation treats unknown fields;
//! - read back with yaml-rust2, the documents grant exactly what the policy declares: every
//!   declared IP:port is one NetworkPolicy egress rule and nothing else is, the special
//!   ranges are excepted from `*` and denied to names, ingress is denied, every declared
//!   path is one hostPath mount with the declared mode, and the securityContext is the
//!   restricted one. The expected values come from capgate's policy (trace.policy) and its
//!   special-range table (capgate::ir), never from the output itself.
//!
//! A missing validator is a loud skip, or a failure under `CI=true`.

mod common;

use common::TempDir;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use capgate::assets::Assets;
use capgate::capability::{Endpoint, FsActions, Glob, Host};
use capgate::compile::{Compiler, Output, Settings};
use capgate::ir::{Policy, SPECIAL_V4, SPECIAL_V6, V4_MAPPED};
use serde_json::{json, Value};

const K8S_VERSION: &str = "1.33.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether a validator is there: a missing one fails under `CI=true`, else is skipped loudly.
fn require(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(
            !in_ci(),
            "{what} is required in CI (CI=true) but could not be run; see .ci/run"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {what} is not installed; this validator did not run (see .ci/run) !!!!!!!!\n");
    }
    ok
}

// ------------------------------------------------------------------ compiling

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn compile(path: &Path, set: &[(&str, &str)]) -> Result<Output, String> {
    let compiler = Compiler::new(&Assets::default(), "kubernetes").expect("built-in target");
    let settings = Settings {
        permissive: false,
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let bytes = std::fs::read(path).unwrap();
    compiler
        .compile(&path.display().to_string(), &bytes, &settings)
        .map_err(|d| d.iter().map(|d| d.render()).collect())
}

/// The output files `(filename, text)`: `files` when the artifact has several, else the one.
fn files(out: &Output) -> Vec<(String, String)> {
    let a: Value = serde_json::from_str(&out.artifact.to_json(false)).unwrap();
    match a.get("files") {
        Some(files) => files
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["filename"].as_str().unwrap().to_owned(),
                    f["config"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        None => vec![(
            a["filename"].as_str().unwrap().to_owned(),
            a["config"].as_str().unwrap().to_owned(),
        )],
    }
}

fn to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let k = k.as_str().unwrap_or_else(|| panic!("non-string key {k:?}"));
                    (k.to_owned(), to_json(v))
                })
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// Every YAML document of a text, as JSON.
fn documents(text: &str) -> Vec<Value> {
    yaml_rust2::YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
        .iter()
        .map(to_json)
        .collect()
}

/// The three documents of one compile, and the file each came from.
struct Docs {
    pod: Value,
    np: Value,
    cnp: Value,
    /// `(filename, kinds in it)` in file order.
    layout: Vec<(String, Vec<String>)>,
}

fn docs(out: &Output) -> Docs {
    let (mut pod, mut np, mut cnp) = (vec![], vec![], vec![]);
    let mut layout = vec![];
    for (name, text) in files(out) {
        let mut kinds = vec![];
        for d in documents(&text) {
            let kind = d["kind"].as_str().unwrap().to_owned();
            match kind.as_str() {
                "Pod" => pod.push(d),
                "NetworkPolicy" => np.push(d),
                "CiliumNetworkPolicy" => cnp.push(d),
                k => panic!("unexpected kind {k}"),
            }
            kinds.push(kind);
        }
        layout.push((name, kinds));
    }
    assert_eq!((pod.len(), np.len(), cnp.len()), (1, 1, 1), "{layout:?}");
    Docs {
        pod: pod.remove(0),
        np: np.remove(0),
        cnp: cnp.remove(0),
        layout,
    }
}

// ------------------------------------------------------------------ semantics

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// The options a check expects (the defaults unless a test sets them).
struct Opts {
    name: String,
    namespace: String,
    uid: i64,
    gid: i64,
    secret: String,
    configmap: String,
}

impl Default for Opts {
    fn default() -> Opts {
        // The defaults of rules/kubernetes.toml, as documented there.
        Opts {
            name: "mcp-server".into(),
            namespace: "mcp".into(),
            uid: 65534,
            gid: 65534,
            secret: "mcp-server-env".into(),
            configmap: "mcp-server-env".into(),
        }
    }
}

fn selector(o: &Opts) -> Value {
    json!({"matchLabels": {"app.kubernetes.io/name": o.name}})
}

fn writable(a: FsActions) -> bool {
    [FsActions::CREATE, FsActions::WRITE, FsActions::DELETE]
        .into_iter()
        .any(|x| a.contains(x))
}

fn check_pod(pod: &Value, p: &Policy, o: &Opts) -> Check {
    ensure!(pod["metadata"]["name"] == json!(o.name), "pod name");
    ensure!(
        pod["metadata"]["namespace"] == json!(o.namespace),
        "pod namespace"
    );
    ensure!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"] == json!(o.name),
        "the label the policies select"
    );
    let spec = &pod["spec"];
    for (k, v) in [
        ("automountServiceAccountToken", false),
        ("hostNetwork", false),
        ("hostPID", false),
        ("hostIPC", false),
        ("enableServiceLinks", false),
    ] {
        ensure!(spec[k] == json!(v), "spec.{k} is {}", spec[k]);
    }
    let sc = &spec["securityContext"];
    ensure!(sc["runAsNonRoot"] == json!(true), "runAsNonRoot");
    ensure!(
        sc["runAsUser"] == json!(o.uid),
        "runAsUser {}",
        sc["runAsUser"]
    );
    ensure!(
        sc["runAsGroup"] == json!(o.gid),
        "runAsGroup {}",
        sc["runAsGroup"]
    );
    ensure!(
        sc["seccompProfile"] == json!({"type": "RuntimeDefault"}),
        "seccompProfile {}",
        sc["seccompProfile"]
    );
    let containers = spec["containers"].as_array().ok_or("containers")?;
    ensure!(containers.len() == 1, "one container");
    ensure!(spec.get("initContainers").is_none(), "no init containers");
    let c = &containers[0];
    let csc = &c["securityContext"];
    ensure!(
        csc["allowPrivilegeEscalation"] == json!(false),
        "allowPrivilegeEscalation"
    );
    ensure!(csc["privileged"] == json!(false), "privileged");
    ensure!(
        csc["readOnlyRootFilesystem"] == json!(true),
        "readOnlyRootFilesystem"
    );
    ensure!(
        csc["capabilities"] == json!({"drop": ["ALL"]}),
        "capabilities {}",
        csc["capabilities"]
    );
    ensure!(c.get("ports").is_none(), "no container ports");

    // env: exactly the declared variables, each from its Secret or ConfigMap key.
    let env: Vec<Value> = c
        .get("env")
        .map(|e| e.as_array().unwrap().clone())
        .unwrap_or_default();
    let want: BTreeSet<&str> = p.env.iter().map(|e| e.name.as_str()).collect();
    let got: BTreeSet<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    ensure!(want == got, "env {got:?}, declared {want:?}");
    for e in &p.env {
        let v = env
            .iter()
            .find(|v| v["name"] == json!(e.name.as_str()))
            .unwrap();
        let expect = if e.inject {
            json!({"secretKeyRef": {"name": o.secret, "key": e.name.as_str(), "optional": false}})
        } else {
            json!({"configMapKeyRef": {"name": o.configmap, "key": e.name.as_str(), "optional": true}})
        };
        ensure!(
            v.as_object().unwrap().len() == 2 && v["valueFrom"] == expect,
            "env {v}"
        );
    }

    // Volumes: every declared path and socket is one hostPath mounted once at the same
    // path, with the declared mode and an exact type; /tmp is private unless declared.
    let volumes = spec["volumes"].as_array().ok_or("volumes")?;
    let mounts = c["volumeMounts"].as_array().ok_or("volumeMounts")?;
    ensure!(volumes.len() == mounts.len(), "one mount per volume");
    let mut want = BTreeSet::new();
    for f in &p.fs {
        let ro = !writable(f.actions);
        let ty = if f.glob == Glob::None {
            "File"
        } else {
            "Directory"
        };
        want.insert((f.path.as_str().to_owned(), ty, ro));
    }
    for i in &p.ipc {
        if let Endpoint::Unix(path) = &i.endpoint {
            // A socket inside a declared directory is reached through that
            // directory's volume: a volume of its own would follow whatever the
            // Pod left in its place (a symlink to another node socket).
            let inside = p.fs.iter().any(|f| {
                path.as_str()
                    .strip_prefix(f.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            });
            if !inside {
                want.insert((path.as_str().to_owned(), "Socket", true));
            }
        }
    }
    let mut got = BTreeSet::new();
    let mut tmp = false;
    for m in mounts {
        let name = m["name"].as_str().unwrap();
        let vols: Vec<&Value> = volumes
            .iter()
            .filter(|v| v["name"] == json!(name))
            .collect();
        ensure!(
            vols.len() == 1,
            "volume {name} defined {} times",
            vols.len()
        );
        let v = vols[0];
        let path = m["mountPath"].as_str().unwrap();
        let ro = m["readOnly"] == json!(true);
        if v.get("emptyDir").is_some() {
            ensure!(path == "/tmp" && !tmp, "emptyDir at {path}");
            ensure!(v["emptyDir"]["medium"] == json!("Memory"), "tmp medium");
            ensure!(v["emptyDir"]["sizeLimit"].is_string(), "tmp sizeLimit");
            tmp = true;
            continue;
        }
        let hp = &v["hostPath"];
        ensure!(
            hp["path"] == json!(path),
            "{name}: host {} at {path}",
            hp["path"]
        );
        let ty = hp["type"].as_str().unwrap_or("");
        ensure!(
            ["File", "Directory", "Socket"].contains(&ty),
            "{path}: hostPath type {ty:?} (must never create a missing path)"
        );
        if ro {
            // A socket is one file: nothing can be mounted below it.
            ensure!(
                ty == "Socket" || m["recursiveReadOnly"] == json!("Enabled"),
                "{path}: read-only but not recursively"
            );
        } else {
            ensure!(m["readOnly"] == json!(false), "{path}: readOnly unset");
        }
        ensure!(
            got.insert((path.to_owned(), ty, ro)),
            "{path} mounted twice"
        );
    }
    ensure!(want == got, "mounts {got:?}, declared {want:?}");
    ensure!(
        tmp == p.tmp_bind().is_none(),
        "private /tmp: {tmp}, /tmp declared: {}",
        p.tmp_bind().is_some()
    );
    Ok(())
}

fn cidr(s: &str) -> (IpAddr, u8) {
    let (a, l) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("no prefix: {s}"));
    (a.parse().unwrap(), l.parse().unwrap())
}

fn special_v4() -> BTreeSet<(IpAddr, u8)> {
    SPECIAL_V4
        .iter()
        .map(|(a, l)| (IpAddr::V4(*a), *l))
        .collect()
}

fn special_v6() -> BTreeSet<(IpAddr, u8)> {
    SPECIAL_V6
        .iter()
        .chain([&V4_MAPPED])
        .map(|(a, l)| (IpAddr::V6(*a), *l))
        .collect()
}

/// A NetworkPolicy port list: exactly TCP on `port`, or TCP 1-65535 without one.
fn tcp_ports(port: Option<u16>) -> Value {
    match port {
        Some(p) => json!([{"protocol": "TCP", "port": p}]),
        None => json!([{"protocol": "TCP", "port": 1, "endPort": 65535}]),
    }
}

fn check_np(np: &Value, p: &Policy, o: &Opts) -> Check {
    ensure!(
        np["metadata"]["namespace"] == json!(o.namespace),
        "np namespace"
    );
    let spec = &np["spec"];
    ensure!(spec["podSelector"] == selector(o), "np podSelector");
    ensure!(
        spec["policyTypes"] == json!(["Ingress", "Egress"]),
        "policyTypes {}",
        spec["policyTypes"]
    );
    ensure!(
        spec["ingress"] == json!([]),
        "ingress must be denied: {}",
        spec["ingress"]
    );
    let got: Vec<Value> = spec["egress"].as_array().ok_or("egress")?.clone();
    let mut want: Vec<Value> = vec![];
    let mut any = false;
    for n in &p.net {
        let port = n.port.map(|p| p.get());
        match &n.host {
            Host::V4(a) => want.push(json!({"to": [{"ipBlock": {"cidr": format!("{a}/32")}}], "ports": tcp_ports(port)})),
            Host::V6(a) => want.push(json!({"to": [{"ipBlock": {"cidr": format!("{a}/128")}}], "ports": tcp_ports(port)})),
            Host::Any => {
                any = true;
                // Checked below, with the except lists compared as sets of ranges.
                want.push(json!({"any": port}));
            }
            Host::Name(_) | Host::Wildcard(_) => {}
        }
    }
    if any {
        want.push(json!({
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }));
    }
    ensure!(
        got.len() == want.len(),
        "{} egress rules, {} declared:\n{got:#?}",
        got.len(),
        want.len()
    );
    let mut left = got.clone();
    for w in &want {
        let pos = if let Some(port) = w.get("any") {
            let port = port.as_u64().map(|p| p as u16);
            left.iter().position(|g| {
                let to = g["to"].as_array().unwrap();
                g["ports"] == tcp_ports(port)
                    && to.len() == 2
                    && [("0.0.0.0/0", special_v4()), ("::/0", special_v6())]
                        .iter()
                        .zip(to)
                        .all(|((c, except), peer)| {
                            let b = &peer["ipBlock"];
                            peer.as_object().unwrap().len() == 1
                                && cidr(b["cidr"].as_str().unwrap()) == cidr(c)
                                && b["except"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|e| cidr(e.as_str().unwrap()))
                                    .collect::<BTreeSet<_>>()
                                    == *except
                        })
            })
        } else {
            left.iter().position(|g| g == w)
        };
        match pos {
            Some(i) => {
                left.remove(i);
            }
            None => return Err(format!("no egress rule {w}; rules:\n{got:#?}")),
        }
    }
    Ok(())
}

fn check_cnp(cnp: &Value, p: &Policy, o: &Opts) -> Check {
    ensure!(cnp["apiVersion"] == json!("cilium.io/v2"), "apiVersion");
    ensure!(
        cnp["metadata"]["namespace"] == json!(o.namespace),
        "cnp namespace"
    );
    let spec = &cnp["spec"];
    ensure!(spec["endpointSelector"] == selector(o), "endpointSelector");
    ensure!(
        spec["enableDefaultDeny"] == json!({"egress": true, "ingress": true}),
        "enableDefaultDeny"
    );
    for k in ["ingress", "ingressDeny", "nodeSelector"] {
        ensure!(spec.get(k).is_none(), "unexpected {k}");
    }
    let mut dns = vec![];
    let mut fqdn = vec![];
    for n in &p.net {
        let sel = match &n.host {
            Host::Name(d) => json!({"matchName": d.as_str()}),
            Host::Wildcard(d) => json!({"matchPattern": format!("**.{}", d.as_str())}),
            _ => continue,
        };
        let port = n.port.map_or(0, |p| p.get());
        fqdn.push(json!({"toFQDNs": [sel], "toPorts": [{"ports": [{"port": port.to_string(), "protocol": "TCP"}]}]}));
        dns.push(sel);
    }
    let mut want = vec![];
    if !dns.is_empty() {
        want.push(json!({
            "toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}}],
            "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}],
                         "rules": {"dns": dns}}],
        }));
    }
    want.extend(fqdn);
    let got = spec["egress"].as_array().ok_or("egress")?;
    let set = |v: &[Value]| v.iter().map(Value::to_string).collect::<BTreeSet<_>>();
    ensure!(
        got.len() == want.len() && set(got) == set(&want),
        "cnp egress:\n{got:#?}\ndeclared:\n{want:#?}"
    );

    let private = p.net.iter().any(|n| n.private);
    match spec.get("egressDeny") {
        None => ensure!(private, "no egressDeny of the special ranges"),
        Some(deny) => {
            ensure!(
                !private,
                "egressDeny would block a declared special-range address"
            );
            let deny = deny.as_array().unwrap();
            ensure!(deny.len() == 1, "one deny rule");
            let rule = deny[0].as_object().unwrap();
            ensure!(rule.len() == 1, "deny by address only, every port");
            let ranges: BTreeSet<(IpAddr, u8)> = rule["toCIDRSet"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    assert_eq!(c.as_object().unwrap().len(), 1, "no except: {c}");
                    cidr(c["cidr"].as_str().unwrap())
                })
                .collect();
            let all: BTreeSet<_> = special_v4().union(&special_v6()).copied().collect();
            ensure!(ranges == all, "denied {ranges:?}");
        }
    }
    Ok(())
}

fn check(out: &Output, o: &Opts) -> Check {
    let d = docs(out);
    let p = &out.trace.policy;
    check_pod(&d.pod, p, o).map_err(|e| format!("Pod: {e}"))?;
    check_np(&d.np, p, o).map_err(|e| format!("NetworkPolicy: {e}"))?;
    check_cnp(&d.cnp, p, o).map_err(|e| format!("CiliumNetworkPolicy: {e}"))
}

// ------------------------------------------------------------------ validators

fn kubernetes_validate() -> Option<PathBuf> {
    let prefix = std::env::var("CAPGATE_MCP_PREFIX").unwrap_or_else(|_| "/opt/capgate-mcp".into());
    let venv = Path::new(&prefix).join("kubernetes-validate/bin/kubernetes-validate");
    let program = if venv.is_file() {
        venv
    } else {
        PathBuf::from("kubernetes-validate")
    };
    Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(program)
}

fn python_jsonschema() -> bool {
    Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs kubernetes-validate on files of one document each; the output line of each must
/// say it passed (a kind it has no schema for is only a warning, and exits 0).
fn run_kubernetes_validate(kv: &Path, files: &[(PathBuf, String)]) -> Check {
    let mut paths: Vec<&PathBuf> = files.iter().map(|(f, _)| f).collect();
    paths.dedup();
    let out = Command::new(kv)
        .args(["--strict", "-k", K8S_VERSION])
        .args(paths)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "kubernetes-validate failed:\n{text}");
    let minor = K8S_VERSION.rsplit_once('.').unwrap().0;
    for (f, resource) in files {
        let line = format!(
            "{} passed for resource {resource} against version {minor}",
            f.display()
        );
        ensure!(text.contains(&line), "no `{line}` in:\n{text}");
    }
    ensure!(
        !text.contains("WARN") && !text.contains("ERROR"),
        "kubernetes-validate:\n{text}"
    );
    Ok(())
}

const CILIUM_CHECK: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
def close(s):
    # Closed objects: the API server's strict field validation refuses an unknown field
    # (and would otherwise prune it silently); x-kubernetes-* keys, nullable and
    # format are not JSON Schema and are ignored by the validator.
    if isinstance(s, dict):
        if (s.get("type") == "object" and "properties" in s and "additionalProperties" not in s
                and not s.get("x-kubernetes-preserve-unknown-fields")):
            s["additionalProperties"] = False
        for v in s.values():
            close(v)
    elif isinstance(s, list):
        for v in s:
            close(v)
close(schema)
v = jsonschema.Draft4Validator(schema)
bad = 0
for f in sys.argv[2:]:
    for e in sorted(v.iter_errors(json.load(open(f))), key=str):
        bad += 1
        print(f, "/".join(map(str, e.absolute_path)), e.message)
sys.exit(1 if bad else 0)
"#;

/// Validates CiliumNetworkPolicy documents against the vendored openAPIV3Schema.
fn run_cilium_schema(dir: &TempDir, docs: &[Value]) -> Check {
    let schema_yaml = std::fs::read_to_string(
        root().join("tests/data/cilium/ciliumnetworkpolicies.openapiv3.yaml"),
    )
    .unwrap();
    let schema = &documents(&schema_yaml)[0]["openAPIV3Schema"];
    assert!(schema["properties"]["spec"]["properties"]["egress"].is_object());
    let schema_path = dir.write("cnp-schema.json", &schema.to_string());
    let paths: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| dir.write(&format!("cnp-{i}.json"), &d.to_string()))
        .collect();
    let out = Command::new("python3")
        .args(["-c", CILIUM_CHECK])
        .arg(&schema_path)
        .args(&paths)
        .output()
        .unwrap();
    ensure!(
        out.status.success(),
        "the Cilium schema refuses:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn resource(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap().to_lowercase(),
        doc["metadata"]["name"].as_str().unwrap()
    )
}

/// Writes the Pod and the NetworkPolicy of each output to files of one document each.
fn k8s_files(dir: &TempDir, tag: &str, d: &Docs) -> Vec<(PathBuf, String)> {
    [&d.pod, &d.np]
        .into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let path = dir.write(&format!("{tag}-{i}.yaml"), &doc.to_string());
            (path, resource(doc))
        })
        .collect()
}

// ------------------------------------------------------------------ tests

#[test]
fn every_fixture_validates_and_grants_exactly_what_it_declares() {
    let dir = TempDir::new("kubernetes-fixtures");
    let mut k8s = vec![];
    let mut cnps = vec![];
    let mut refused = vec![];
    for m in fixtures() {
        let n = m.file_stem().unwrap().to_string_lossy().into_owned();
        let out = match compile(&m, &[]) {
            Ok(out) => out,
            Err(e) => {
                refused.push((n, e));
                continue;
            }
        };
        // Only what a Pod cannot have (a display, a desktop bus) is unenforceable,
        // unless a declared path's volume holds its socket (then it is reachable).
        let p = &out.trace.policy;
        let desktop = p
            .ipc
            .iter()
            .filter(|i| match &i.endpoint {
                Endpoint::Unix(_) => false,
                Endpoint::X11 => p.enclosing_bind("/tmp/.X11-unix").is_none(),
                Endpoint::DbusSystem => p.enclosing_bind("/run/dbus/system_bus_socket").is_none(),
                Endpoint::DbusSession => true,
            })
            .count();
        let a: Value = serde_json::from_str(&out.artifact.to_json(false)).unwrap();
        assert_eq!(a["unenforceable"].as_array().unwrap().len(), desktop, "{n}");
        if let Err(e) = check(&out, &Opts::default()) {
            panic!("{n}: {e}");
        }
        let d = docs(&out);
        // Pod and NetworkPolicy apply anywhere; the CiliumNetworkPolicy needs Cilium's
        // CRDs, so it is a file of its own.
        let kinds = |k: &[&str]| k.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            d.layout,
            vec![
                (
                    "kubernetes.yaml".to_owned(),
                    kinds(&["Pod", "NetworkPolicy"])
                ),
                (
                    "ciliumnetworkpolicy.yaml".to_owned(),
                    kinds(&["CiliumNetworkPolicy"])
                ),
            ],
            "{n}"
        );
        // The file as written, both documents in it.
        let text = &files(&out)[0].1;
        let path = dir.write(&format!("{n}.yaml"), text);
        k8s.push((path.clone(), resource(&d.pod)));
        k8s.push((path, resource(&d.np)));
        cnps.push(d.cnp);
    }
    // Every fact kind has a rule: strict mode refuses no fixture.
    assert!(refused.is_empty(), "refused: {refused:#?}");
    assert_eq!(cnps.len(), fixtures().len());

    if require(
        "python3 with jsonschema (Debian: python3-jsonschema)",
        python_jsonschema(),
    ) {
        run_cilium_schema(&dir, &cnps).unwrap();
    }
    if let Some(kv) = kubernetes_validate() {
        run_kubernetes_validate(&kv, &k8s).unwrap();
    } else {
        require("kubernetes-validate (PyPI)", false);
    }
}

#[test]
fn options_reach_the_output() {
    let m = root().join("fixtures/manifests/database.json");
    let set = [
        ("name", "db-tool"),
        ("namespace", "tools"),
        ("uid", "1234"),
        ("gid", "2345"),
        ("secret", "db-secrets"),
        ("configmap", "db-config"),
        ("tmp_size", "4096"),
        ("memory", "1g"),
    ];
    let out = compile(&m, &set).unwrap();
    let o = Opts {
        name: "db-tool".into(),
        namespace: "tools".into(),
        uid: 1234,
        gid: 2345,
        secret: "db-secrets".into(),
        configmap: "db-config".into(),
    };
    check(&out, &o).unwrap();
    let d = docs(&out);
    let c = &d.pod["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["memory"], json!("1Gi"));
    let tmp = d.pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == json!("tmp"))
        .unwrap();
    assert_eq!(tmp["emptyDir"]["sizeLimit"], json!("4096"));
    // The default sizes are quantities in binary units (64m is 64 MiB, not 0.064).
    let d = docs(&compile(&m, &[]).unwrap());
    assert_eq!(
        d.pod["spec"]["containers"][0]["resources"]["limits"]["memory"],
        json!("512Mi")
    );
    // uid 0 is refused.
    let e = compile(&m, &[("uid", "0")])
        .err()
        .expect("uid 0 is refused");
    assert!(e.contains("OPTION_INVALID"), "{e}");
    // An empty name would make the policies select every Pod whose label is empty.
    let e = compile(&m, &[("name", "")])
        .err()
        .expect("an empty name is refused");
    assert!(e.contains("OPTION_INVALID"), "{e}");
}

/// `recursiveReadOnly` is a gated field that an API server without the feature
/// drops without an error, leaving writable submounts below a read-only path
/// writable: every read-only directory says so in a note (never silently
/// `exact` for a wider grant), and IfPossible's runtime fallback is named too.
#[test]
fn read_only_directories_note_that_recursive_read_only_may_be_dropped() {
    let dir = TempDir::new("kubernetes-rro");
    let m = dir.write(
        "m.json",
        r#"{"name":"rro","version":"1","tools":[{"name":"t","capabilities":[
            "fs:read:/srv/ro/**","fs:read:/etc/app.conf","fs:read,write,create,delete:/srv/rw/**"]}]}"#,
    );
    let notes = |set: &[(&str, &str)]| -> Vec<String> {
        let a: Value =
            serde_json::from_str(&compile(&m, set).unwrap().artifact.to_json(false)).unwrap();
        a["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .filter(|n| n.contains("recursiveReadOnly"))
            .collect()
    };
    let enabled = notes(&[]);
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    assert!(
        enabled[0].starts_with("fs: /srv/ro ")
            && enabled[0].contains("drops the field without an error")
            && enabled[0].contains("stays writable")
            && !enabled[0].contains("IfPossible"),
        "{enabled:?}"
    );
    let if_possible = notes(&[("recursive_readonly", "IfPossible")]);
    assert_eq!(if_possible.len(), 1, "{if_possible:?}");
    assert!(
        if_possible[0].contains("recursive_readonly=IfPossible"),
        "{if_possible:?}"
    );
}

/// The checks are not no-ops: each refuses a document broken the way a template bug would.
#[test]
fn the_checks_refuse_broken_documents() {
    let m = root().join("fixtures/manifests/egress-mix.json");
    let out = compile(&m, &[]).unwrap();
    let p = &out.trace.policy;
    let o = Opts::default();
    let d = docs(&out);

    // Semantics: a widened address, a lost ingress denial, an extra FQDN, a writable mount.
    let mut np = d.np.clone();
    np["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = json!("1.1.1.0/24");
    assert!(check_np(&np, p, &o).is_err());
    let mut np = d.np.clone();
    np["spec"]["policyTypes"] = json!(["Egress"]);
    assert!(check_np(&np, p, &o).is_err());
    let mut cnp = d.cnp.clone();
    cnp["spec"]["egress"][1]["toFQDNs"][0] = json!({"matchPattern": "*"});
    assert!(check_cnp(&cnp, p, &o).is_err());
    let mut cnp = d.cnp.clone();
    cnp["spec"]["egress"][1]["toPorts"][0]["ports"][0]["protocol"] = json!("ANY");
    assert!(check_cnp(&cnp, p, &o).is_err());
    let fs = compile(&root().join("fixtures/manifests/nested-writes.json"), &[]).unwrap();
    let mut pod = docs(&fs).pod;
    let mounts = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap();
    let ro = mounts
        .iter_mut()
        .find(|m| m["readOnly"] == json!(true))
        .unwrap();
    ro["readOnly"] = json!(false);
    assert!(check_pod(&pod, &fs.trace.policy, &o).is_err());
    let mut pod = d.pod.clone();
    pod["spec"]["containers"][0]["securityContext"]["capabilities"] =
        json!({"drop": ["ALL"], "add": ["NET_RAW"]});
    assert!(check_pod(&pod, p, &o).is_err());

    let dir = TempDir::new("kubernetes-broken");
    // Cilium's schema: a misspelt key (which Kubernetes would prune, leaving an allow of
    // every destination on that port) and a bad protocol.
    if require(
        "python3 with jsonschema (Debian: python3-jsonschema)",
        python_jsonschema(),
    ) {
        run_cilium_schema(&dir, std::slice::from_ref(&d.cnp)).unwrap();
        let mut cnp = d.cnp.clone();
        let rule = cnp["spec"]["egress"][1].as_object_mut().unwrap();
        let fqdns = rule.remove("toFQDNs").unwrap();
        rule.insert("toFQDN".into(), fqdns);
        assert!(run_cilium_schema(&dir, &[cnp]).is_err());
        let mut cnp = d.cnp.clone();
        cnp["spec"]["egress"][1]["toPorts"][0]["ports"][0]["protocol"] = json!("tcp");
        assert!(run_cilium_schema(&dir, &[cnp]).is_err());
    }
    // kubernetes-validate --strict: an unknown securityContext field, a string endPort.
    if let Some(kv) = kubernetes_validate() {
        let mut broken = d.clone_docs();
        broken.pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] =
            json!(true);
        assert!(run_kubernetes_validate(&kv, &k8s_files(&dir, "pod", &broken)).is_err());
        let mut broken = d.clone_docs();
        broken.np["spec"]["egress"][0]["ports"][0]["endPort"] = json!("65535");
        assert!(run_kubernetes_validate(&kv, &k8s_files(&dir, "np", &broken)).is_err());
        run_kubernetes_validate(&kv, &k8s_files(&dir, "ok", &d)).unwrap();
    } else {
        require("kubernetes-validate (PyPI)", false);
    }
}

impl Docs {
    fn clone_docs(&self) -> Docs {
        Docs {
            pod: self.pod.clone(),
            np: self.np.clone(),
            cnp: self.cnp.clone(),
            layout: self.layout.clone(),
        }
    }
}

#[test]
fn output_snapshots() {
    for n in [
        "database",
        "egress-mix",
        "fetch",
        "nested-writes",
        "desktop",
    ] {
        let out = compile(&root().join(format!("fixtures/manifests/{n}.json")), &[]).unwrap();
        // The files as text (readable), then the rest of the artifact.
        let mut a: Value = serde_json::from_str(&out.artifact.to_json(false)).unwrap();
        let mut text = String::new();
        for (name, config) in files(&out) {
            text.push_str(&format!("# ---- {name}\n{}\n", config.trim_end()));
        }
        let a = a.as_object_mut().unwrap();
        a.remove("config");
        a.remove("files");
        a.remove("provenance");
        text.push_str(&format!(
            "# ---- artifact\n{}\n",
            serde_json::to_string_pretty(a).unwrap()
        ));
        insta::assert_snapshot!(format!("kubernetes-{n}"), text);
    }
}
