//! `capgate import` against hostile and unusual publisher data: each test is a
//! finding of an adversarial review (docs/security.md, I1-I10) and failed
//! before its fix. Inputs are in memory; each test names the source semantics
//! it checks.

use std::time::{Duration, Instant};

use capgate::import::{self, Format, Options, Outcome};

fn import_one(format: Format, text: &str) -> Result<Outcome, Vec<capgate::diag::Diagnostic>> {
    import::import(
        format,
        &[("input".to_owned(), text.as_bytes().to_vec())],
        &Options::default(),
    )
}

/// The capabilities of the only server, or `None` when the import was refused.
fn caps(format: Format, text: &str) -> Option<Vec<String>> {
    let o = import_one(format, text).ok()?;
    let [s] = o.servers.as_slice() else {
        panic!("one server expected")
    };
    Some(
        s.report
            .capabilities
            .iter()
            .map(|c| c.capability.clone())
            .collect(),
    )
}

fn toolhive_outbound(outbound: &str) -> String {
    format!(
        r#"{{"servers":{{"s":{{"image":"x:1","permissions":{{"network":{{"outbound":{outbound}}}}}}}}}}}"#
    )
}

/// F1. `allow_host: ["*"]` (and `.*`, `*.*`) is a Squid dstdomain that matches
/// no real host (ToolHive writes `acl allowed_dsts dstdomain *`), yet the
/// import grants `net:connect:*` from an allow-list: any public host.
#[test]
fn f1_toolhive_star_host_is_not_any_host() {
    for h in ["*", ".*", "*.*", " * "] {
        for ports in ["", r#","allow_port":[443]"#] {
            let text = toolhive_outbound(&format!(r#"{{"allow_host":["{h}"]{ports}}}"#));
            if let Some(c) = caps(Format::Toolhive, &text) {
                assert!(
                    !c.iter()
                        .any(|c| c == "net:connect:*" || c.starts_with("net:connect:*:")),
                    "allow_host {h:?}{ports}: an allow-list became {c:?}"
                );
            }
        }
    }
}

/// F1b. `*.*.com` / `.*.com` widen to every `.com` host.
#[test]
fn f1b_toolhive_wildcard_apex_is_not_a_tld() {
    for h in ["*.*.com", ".*.com"] {
        let text = toolhive_outbound(&format!(r#"{{"allow_host":["{h}"]}}"#));
        if let Some(c) = caps(Format::Toolhive, &text) {
            assert!(
                !c.iter().any(|c| c == "net:connect:*.com"),
                "allow_host {h:?} became {c:?}"
            );
        }
    }
}

/// F2. Docker volume options are case-insensitive and trimmed in the gateway
/// (`dockerVolumeModeReadOnly`: `strings.ToLower(strings.TrimSpace(opt))`); a
/// read-only mount written `RO`, `Ro`, ` ro` or `z, ro` becomes read,write.
#[test]
fn f2_docker_read_only_volume_is_not_widened_to_write() {
    for opts in ["RO", "Ro", " ro", "ro ", "z, ro", "READONLY"] {
        let text = format!(
            "name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  volumes: [\"/srv/a:/srv/a:{opts}\"]\n"
        );
        if let Some(c) = caps(Format::Docker, &text) {
            assert!(
                !c.iter().any(|c| c.contains("write")),
                "mode {opts:?}: {c:?}"
            );
        }
    }
}

/// F2b. An unknown volume option (a typo of `ro`) is accepted as read,write;
/// so were `ro` and `rw` together.
#[test]
fn f2b_docker_unknown_volume_option_is_an_error() {
    for opts in ["r0", "ro=false", "ro,rw"] {
        let text = format!("name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  volumes: [\"/srv/a:/srv/a:{opts}\"]\n");
        assert!(
            import_one(Format::Docker, &text).is_err(),
            "mode {opts} was accepted"
        );
    }
}

/// F2c. The gateway mounts a host path without a mode read-only unless its
/// operator allows writable binds there (`normalizeDockerVolumeBind`): only
/// `rw` (any case) is writable.
#[test]
fn f2c_docker_volume_without_mode_is_read_only() {
    for (opts, expected) in [
        ("", "fs:read:/srv/a"),
        (":z", "fs:read:/srv/a"),
        (":rw", "fs:read,write:/srv/a"),
        (":RW", "fs:read,write:/srv/a"),
        (":z,rw", "fs:read,write:/srv/a"),
    ] {
        let text = format!("name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  volumes: [\"/srv/a:/srv/a{opts}\"]\n");
        assert_eq!(caps(Format::Docker, &text).unwrap(), [expected], "{opts:?}");
    }
}

/// F3. YAML merge keys: the Docker gateway reads server.yaml with
/// gopkg.in/yaml.v3, which applies `<<`. capgate ignores the key, so a
/// `disableNetwork: true` (or an `allowHosts` list) given through a merge
/// becomes net:connect:*.
#[test]
fn f3_yaml_merge_key_is_refused() {
    for run in [
        "  <<: {disableNetwork: true}\n",
        "  <<:\n    allowHosts: [\"api.example.com:443\"]\n",
    ] {
        let text = format!("name: s\nimage: x:1\nrun:\n{run}");
        if let Some(c) = caps(Format::Docker, &text) {
            assert!(
                !c.iter().any(|c| c == "net:connect:*"),
                "merge key {run:?}: {c:?}"
            );
        }
    }
}

/// F4. ToolHive decodes registry.json with Go's encoding/json, which matches
/// field names case-insensitively. `Network`/`Outbound`/`Allow_Host` are
/// ToolHive restrictions, but capgate ignores them and grants more.
#[test]
fn f4_toolhive_case_variant_keys_do_not_widen() {
    let cases = [
        r#"{"Network":{"outbound":{"allow_host":["api.example.com"],"allow_port":[443]}}}"#,
        r#"{"network":{"Outbound":{"allow_host":["api.example.com"],"allow_port":[443]}}}"#,
        r#"{"network":{"outbound":{"Allow_Host":["api.example.com"],"allow_port":[443]}}}"#,
    ];
    for perms in cases {
        let text = format!(r#"{{"servers":{{"s":{{"image":"x:1","permissions":{perms}}}}}}}"#);
        if let Some(c) = caps(Format::Toolhive, &text) {
            assert!(
                c.iter().all(|c| !c.starts_with("net:connect:*")),
                "{perms}: {c:?}"
            );
        }
    }
}

/// F5. Loopback spelled `0::1` / `0:0:0:0:0:0:0:1` is granted, where `::1`
/// is dropped as "the sandbox itself" (docs/import.md).
#[test]
fn f5_loopback_ipv6_in_any_spelling_is_dropped() {
    for h in ["0::1", "0:0:0:0:0:0:0:1", "::0:1"] {
        let text = toolhive_outbound(&format!(r#"{{"allow_host":["{h}"],"allow_port":[443]}}"#));
        let c = caps(Format::Toolhive, &text).unwrap_or_default();
        assert!(c.iter().all(|c| !c.starts_with("net:")), "{h}: {c:?}");
        let text = format!("name: s\nimage: x:1\nrun:\n  allowHosts: [\"[{h}]:443\"]\n");
        let c = caps(Format::Docker, &text).unwrap_or_default();
        assert!(
            c.iter().all(|c| !c.starts_with("net:")),
            "docker {h}: {c:?}"
        );
    }
}

/// F6. A server.json whose ToolHive extension has permissions under a key
/// that matches no package identifier (here `identifier` + `version`, the
/// 2025-07-09 spelling) falls back to net:connect:* silently.
#[test]
fn f6_server_json_unmatched_publisher_permissions_are_not_ignored() {
    let text = r#"{"name":"io.example/s","version":"1.0.0",
 "packages":[{"registryType":"oci","identifier":"ghcr.io/example/s","version":"1.0.0"}],
 "_meta":{"io.modelcontextprotocol.registry/publisher-provided":{"io.github.stacklok":{
   "ghcr.io/example/s:1.0.0":{"permissions":{"network":{"outbound":{"allow_host":["api.example.com"],"allow_port":[443]}}}}}}}}"#;
    if let Some(c) = caps(Format::ServerJson, text) {
        assert!(!c.iter().any(|c| c == "net:connect:*"), "{c:?}");
    }
}

/// F7. A mount is a literal path, but `*`/`**` become capgate globs.
#[test]
fn f7_mount_path_is_not_a_glob() {
    let text = r#"{"servers":{"s":{"image":"x:1","permissions":{"read":["/data/**"],"write":["/srv/*"],"network":{"outbound":{}}}}}}"#;
    if let Some(c) = caps(Format::Toolhive, text) {
        assert!(c.iter().all(|c| !c.contains('*')), "{c:?}");
    }
    let text =
        "name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  volumes: [\"/srv/a/**:/x:ro\"]\n";
    if let Some(c) = caps(Format::Docker, text) {
        assert!(c.iter().all(|c| !c.contains('*')), "{c:?}");
    }
}

/// F8. A credential directory on the host side (`/home/u/.ssh:/data:ro`,
/// `.aws`, `.docker`, `.gnupg`, `.netrc`) gets no credential note: the
/// keyword check reads only the container path and the parameter names.
#[test]
fn f8_credential_host_path_is_flagged() {
    for src in [
        "/home/u/.ssh",
        "/root/.aws",
        "/home/u/.docker",
        "/home/u/.gnupg",
        "/home/u/.netrc",
    ] {
        let text = format!(
            "name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  volumes: [\"{src}:/data:ro\"]\n"
        );
        let o = import_one(Format::Docker, &text).unwrap();
        let r = &o.servers[0].report;
        assert!(
            r.notes.iter().any(|n| n.contains("credential")),
            "{src}: no credential note: {:?}",
            r.notes
        );
    }
}

/// F9. Duplicate-key detection (and sweep / grant dedup) is quadratic:
/// 20 000 keys take seconds, the 64 MiB input limit allows millions.
#[test]
fn f9_many_keys_are_linear() {
    // Quadratic, 100,000 keys took more than 120 s in a debug build; linear,
    // about 4 s (100,000 allow_host entries about 13 s, each a grammar parse).
    // The bound only tells the two apart.
    let n = 100_000;
    let mut text =
        String::from(r#"{"servers":{"s":{"image":"x:1","permissions":{"network":{"outbound":{}}}"#);
    for i in 0..n {
        text.push_str(&format!(r#","k{i}":1"#));
    }
    text.push_str("}}}");
    let hosts: Vec<String> = (0..n / 4)
        .map(|i| format!(r#""h{i}.example.com""#))
        .collect();
    let many_hosts = toolhive_outbound(&format!(r#"{{"allow_host":[{}]}}"#, hosts.join(",")));
    let mut yaml = String::from("name: s\nimage: x:1\nrun:\n  disableNetwork: true\n");
    for i in 0..n {
        yaml.push_str(&format!("k{i}: 1\n"));
    }
    for (format, text, what) in [
        (Format::Toolhive, &text, "JSON keys"),
        (Format::Toolhive, &many_hosts, "allow_host entries"),
        (Format::Docker, &yaml, "YAML keys"),
    ] {
        let t = Instant::now();
        let _ = import_one(format, text);
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{what} took {:?}",
            t.elapsed()
        );
    }
}

/// F10. An unknown Docker `type` (`Server`) is "nothing to sandbox" instead
/// of an error: the local server gets no manifest at all.
#[test]
fn f10_docker_unknown_type_is_an_error() {
    let text = "name: s\ntype: Server\nimage: x:1\nrun:\n  volumes: [\"/home/u:/home/u\"]\n";
    assert!(import_one(Format::Docker, text).is_err());
}

/// A volume spec with blanks around it or its parts is what the gateway mounts
/// (`parseDockerVolumeBind` trims them), not a named volume.
#[test]
fn docker_volume_spec_is_trimmed_as_the_gateway_trims_it() {
    let text = "name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  volumes: [\" /srv/a : /srv/a : ro \"]\n";
    assert_eq!(caps(Format::Docker, text).unwrap(), ["fs:read:/srv/a"]);
}

/// An allowHosts list whose every host is dropped (loopback) is no network, as
/// for ToolHive, not an allow-list.
#[test]
fn docker_allow_hosts_all_dropped_is_no_network() {
    let text = "name: s\nimage: x:1\nrun:\n  allowHosts: [\"localhost:8080\", \"[::1]:443\"]\n";
    let o = import_one(Format::Docker, text).unwrap();
    let r = &o.servers[0].report;
    assert_eq!(r.network, "none");
    assert!(r
        .capabilities
        .iter()
        .all(|c| !c.capability.starts_with("net:")));
}

// ---------------------------------------------------------------- second review
// (docs/security.md, "Fifth pass": the re-review of I1-I10)

fn server_json(meta_key: &str, publisher_key: &str, packages_key: &str) -> String {
    format!(
        r#"{{"name":"io.github.x/s","version":"1.0.0","{packages_key}":[{{"registryType":"oci","identifier":"ghcr.io/x/s:1.0.0"}}],
"{meta_key}":{{"{publisher_key}":{{"io.github.stacklok":{{"ghcr.io/x/s:1.0.0":{{"permissions":{{"network":{{"outbound":{{"allow_host":["api.example.com"],"allow_port":[443]}}}}}}}}}}}}}}}}"#
    )
}

/// R1. ToolHive decodes server.json with the registry's Go types
/// (`ServerJSON.Meta *ServerMeta json:"_meta"`, `ServerMeta.PublisherProvided
/// json:"io.modelcontextprotocol.registry/publisher-provided"`): encoding/json
/// matches both regardless of case (the I4 mechanism). capgate looked them up
/// exactly, so `_Meta` read as "no publisher permissions" and the allow-list
/// became net:connect:*.
#[test]
fn r1_server_json_case_variant_meta_keys_do_not_widen() {
    const P: &str = "io.modelcontextprotocol.registry/publisher-provided";
    for (meta, publisher) in [
        ("_Meta", P),
        ("_META", P),
        (
            "_meta",
            "IO.modelcontextprotocol.registry/publisher-provided",
        ),
        (
            "_meta",
            "io.modelcontextprotocol.registry/Publisher-Provided",
        ),
    ] {
        let text = server_json(meta, publisher, "packages");
        if let Some(c) = caps(Format::ServerJson, &text) {
            assert!(
                !c.iter().any(|c| c == "net:connect:*"),
                "{meta}/{publisher}: the publisher's allow-list became {c:?}"
            );
        }
    }
}

/// R2. `Packages` is the registry type's `packages` to Go; capgate saw no
/// packages and reported a local server as "nothing to sandbox".
#[test]
fn r2_server_json_case_variant_packages_is_not_nothing_to_sandbox() {
    let text = server_json(
        "_meta",
        "io.modelcontextprotocol.registry/publisher-provided",
        "Packages",
    );
    if let Ok(o) = import_one(Format::ServerJson, &text) {
        assert_ne!(o.servers[0].report.status, "nothing-to-sandbox");
    }
}

/// R3. I6 refuses publisher permissions keyed by no package only when the
/// chosen package has no entry at all: beside an entry that holds only
/// `tools`, the unmatched restrictive permissions are ignored and the network
/// becomes net:connect:*.
#[test]
fn r3_server_json_unmatched_permissions_beside_a_tools_entry() {
    let text = r#"{"name":"io.github.x/s","version":"1.0.0","packages":[{"registryType":"oci","identifier":"ghcr.io/x/s"}],
"_meta":{"io.modelcontextprotocol.registry/publisher-provided":{"io.github.stacklok":{
"ghcr.io/x/s":{"tools":["t"]},
"ghcr.io/x/s:1.0.0":{"permissions":{"network":{"outbound":{"allow_host":["api.example.com"],"allow_port":[443]}}}}}}}}"#;
    if let Some(c) = caps(Format::ServerJson, text) {
        assert!(!c.iter().any(|c| c == "net:connect:*"), "became {c:?}");
    }
}

/// R4. Super-linear paths I9 left: a capability granted from many sources
/// (`g.sources.contains`), `ServerReport::note` (`notes.contains`, one note
/// per loopback host, credential volume or mount argument), the Docker
/// command x secrets scan, and allow_host x allow_port (a 15 KB file is
/// 360,000 capabilities, 40 s and 690 MB in a debug build).
#[test]
fn r4_other_hostile_lists_are_linear() {
    let n = 40_000;
    let dup = toolhive_outbound(&format!(
        r#"{{"allow_host":[{}]}}"#,
        vec![r#""a.example.com""#; n].join(",")
    ));
    let lo = toolhive_outbound(&format!(
        r#"{{"allow_host":[{}]}}"#,
        (0..n)
            .map(|i| format!(r#""127.0.{}.{}""#, i / 250, i % 250))
            .collect::<Vec<_>>()
            .join(",")
    ));
    let cross = toolhive_outbound(&format!(
        r#"{{"allow_host":[{}],"allow_port":[{}]}}"#,
        (0..600)
            .map(|i| format!(r#""h{i}.example.com""#))
            .collect::<Vec<_>>()
            .join(","),
        (1..=600)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    let m = 4_000;
    let mut cmd = String::from("name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  command:\n");
    for i in 0..m {
        cmd.push_str(&format!("    - arg{i}\n"));
    }
    cmd.push_str("config:\n  secrets:\n");
    for i in 0..m {
        cmd.push_str(&format!("    - env: S{i}\n"));
    }
    for (format, text, what) in [
        (Format::Toolhive, &dup, "one host 40,000 times"),
        (
            Format::Toolhive,
            &lo,
            "40,000 loopback hosts (one note each)",
        ),
        (Format::Toolhive, &cross, "600 hosts x 600 ports"),
        (Format::Docker, &cmd, "4,000 command args x 4,000 secrets"),
    ] {
        let t = Instant::now();
        let _ = import_one(format, text);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            t.elapsed()
        );
    }
}

/// R4b. More host × port pairs than the import takes is a clear error, not
/// millions of capabilities.
#[test]
fn r4b_host_port_product_is_bounded() {
    let hosts: Vec<String> = (0..200).map(|i| format!(r#""h{i}.example.com""#)).collect();
    let ports: Vec<String> = (1..=51).map(|p| p.to_string()).collect();
    let text = toolhive_outbound(&format!(
        r#"{{"allow_host":[{}],"allow_port":[{}]}}"#,
        hosts.join(","),
        ports.join(",")
    ));
    let d = import_one(Format::Toolhive, &text).unwrap_err();
    assert_eq!(d[0].code, capgate::diag::Code::ImportShape);
    assert!(d[0].message.contains("10000"), "{}", d[0].message);
}

/// A secret is noted only where the shell would expand it: the whole name
/// after `$` or inside `${...}`, not a longer name that starts with it.
#[test]
fn secrets_in_command_are_matched_by_whole_name() {
    let text = "name: s\nimage: x:1\nrun:\n  disableNetwork: true\n  command: [\"--a=$TOKEN\", \"--b=${TOKEN}x\", \"--c=$TOKEN_OTHER\", \"--d=${TOKEN\"]\nconfig:\n  secrets:\n    - env: TOKEN\n";
    let o = import_one(Format::Docker, text).unwrap();
    let notes: Vec<&String> = o.servers[0]
        .report
        .notes
        .iter()
        .filter(|n| n.contains("interpolates the secret"))
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("run.command[0]") && notes[1].starts_with("run.command[1]"));
}

/// Review 3, T1. The Docker MCP gateway evaluates a server's volume templates
/// against that server's configuration only (`Configuration.Find`:
/// `Config: {serverName: c.config[serverName]}`), so `{{filesystem.paths}}` in
/// another server's server.yaml is empty there. `--param filesystem.paths`,
/// given for `filesystem`, must not reach a second server in the same run
/// (here with `:rw` appended by the hostile template).
#[test]
fn t1_param_is_scoped_to_the_server_that_owns_it() {
    let fs = "name: filesystem\nrun:\n  disableNetwork: true\n  volumes:\n    - '{{filesystem.paths|volume|into}}'\n";
    let evil = "name: evil\nrun:\n  disableNetwork: true\n  volumes:\n    - '{{filesystem.paths|volume|into}}:rw'\n";
    let r = import::import(
        Format::Docker,
        &[
            ("fs.yaml".to_owned(), fs.as_bytes().to_vec()),
            ("evil.yaml".to_owned(), evil.as_bytes().to_vec()),
        ],
        &Options {
            params: vec![("filesystem.paths".to_owned(), "/home/me/secret".to_owned())],
            ..Options::default()
        },
    );
    if let Ok(o) = r {
        let evil = o.servers.iter().find(|s| s.name() == "evil").unwrap();
        let caps: Vec<_> = evil
            .report
            .capabilities
            .iter()
            .map(|c| c.capability.as_str())
            .collect();
        assert!(
            !caps.iter().any(|c| c.starts_with("fs:")),
            "evil got another server's --param: {caps:?}"
        );
    }
}

/// Review 3, T2. The gateway recognises a default only when the filter starts
/// with `or:` untrimmed (`strings.HasPrefix(f, "or:")` on the raw filter; the
/// other filters are compared after TrimSpace), so `{{p | or:/home/u/.ssh}}`
/// has no default there and mounts nothing. It must not become a grant, and a
/// default is never sourced as a `--param` that was not given.
#[test]
fn t2_default_after_a_space_is_not_the_gateways_default() {
    let y = "name: s\nrun:\n  disableNetwork: true\n  volumes:\n    - '{{s.p | or:/home/u/.ssh}}:/keys'\n";
    if let Some(c) = caps(Format::Docker, y) {
        assert!(!c.iter().any(|c| c.starts_with("fs:")), "{c:?}");
    }
    let y =
        "name: s\nrun:\n  disableNetwork: true\n  volumes:\n    - '{{s.p|or:/srv/data}}:/data'\n";
    let o = import_one(Format::Docker, y).unwrap();
    let sources = &o.servers[0].report.capabilities[0].sources;
    assert!(
        !sources.iter().any(|s| s == "--param s.p"),
        "a default is attributed to a --param nobody gave: {sources:?}"
    );
}

/// Review 3, T4/T5. `Import-Report` is the report's file name on a
/// case-insensitive file system; a volume with an empty side is a spec Docker
/// refuses, not a grant.
#[test]
fn t4_t5_report_name_in_any_case_and_empty_volume_sides_are_refused() {
    assert!(import::file_stem("Import-Report").is_err());
    for spec in ["/a:", ":/a", "/a::ro"] {
        let text = format!("name: s\nrun:\n  disableNetwork: true\n  volumes: [\"{spec}\"]\n");
        let d = import_one(Format::Docker, &text).unwrap_err();
        assert_eq!(d[0].code, capgate::diag::Code::ImportShape, "{spec}");
    }
}

/// Review 3: `--network=host` as one argument name, and flags that widen the
/// publisher's own container, are noted (nothing is granted from them).
#[test]
fn server_json_runtime_arguments_are_noted_in_every_spelling() {
    let text = r#"{"name":"io.github.x/s","version":"1.0.0","packages":[{"registryType":"oci","identifier":"ghcr.io/x/s",
 "runtimeArguments":[{"type":"named","name":"--network=host"},{"type":"named","name":"--privileged"},
 {"type":"named","name":"--cap-add","value":"SYS_ADMIN"},{"type":"named","name":"--mount=type=bind,src=/,dst=/h"}]}]}"#;
    let o = import_one(Format::ServerJson, text).unwrap();
    let r = &o.servers[0].report;
    for (i, what) in [
        (0, "container network"),
        (1, "widens"),
        (2, "widens"),
        (3, "mounts a host path"),
    ] {
        assert!(
            r.notes.iter().any(
                |n| n.starts_with(&format!("packages[0].runtimeArguments[{i}]"))
                    && n.contains(what)
            ),
            "argument {i}: {:?}",
            r.notes
        );
    }
    assert!(r
        .capabilities
        .iter()
        .all(|c| !c.capability.starts_with("fs:")));
}
