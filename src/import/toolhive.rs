//! ToolHive: the legacy registry (`registry.json`: `servers.<name>`) and the
//! permission profile shape it shares with the `io.github.stacklok` server.json
//! extension (`permissions.network.outbound`, `permissions.read/write`).
//!
//! Semantics (ToolHive's egress squid.conf, `pkg/container/docker/squid.go`):
//! `allow_host` entries are Squid `dstdomain` values, so `.example.com` is the
//! apex and every subdomain and a bare host is exact (Envoy also takes
//! `*.example.com` for `.example.com`); `allow_port` is one list ANDed with
//! every host; ports without hosts are any host on those ports; an outbound
//! object with neither is deny-all; `insecure_allow_all`, or no network
//! section at all, is allow-all.

use super::report::ServerReport;
use super::tree::{index, join, Doc, Node};
use super::{exact_keys, loopback, net_cap, unknown_network, Ctx, Imported, ManifestSpec};
use crate::diag::{Code, Diagnostic};

/// Imports every server of a legacy registry file.
pub fn import(doc: &Doc, root: &Node, ctx: &mut Ctx) -> Result<Vec<Imported>, Diagnostic> {
    let mut out = Vec::new();
    let top = doc.object(root, "")?;
    exact_keys(doc, root, "", &["servers", "remote_servers"])?;
    let mut seen_servers = false;
    for (key, node) in top {
        match key.as_str() {
            "servers" => {
                seen_servers = true;
                for (name, entry) in doc.object(node, "servers")? {
                    if !ctx.wanted(name) {
                        continue;
                    }
                    let path = join("servers", name);
                    out.push(import_entry(doc, name, entry, &path, ctx)?);
                }
            }
            "remote_servers" => {
                for (name, entry) in doc.object(node, "remote_servers")? {
                    if !ctx.wanted(name) {
                        continue;
                    }
                    let path = join("remote_servers", name);
                    let mut rep = ServerReport::new(name, doc.file, &path);
                    rep.status = "nothing-to-sandbox";
                    rep.network = "none";
                    rep.note("a remote server (a URL): nothing runs locally, so there is nothing to sandbox");
                    rep.sweep(entry, &path, &super::reason);
                    out.push(Imported {
                        report: rep,
                        manifest: None,
                    });
                }
            }
            _ => {}
        }
    }
    if !seen_servers {
        return Err(doc.error(
            Code::ImportShape,
            root,
            "servers",
            "a ToolHive registry has a `servers` object (missing)",
        ));
    }
    Ok(out)
}

fn import_entry(
    doc: &Doc,
    name: &str,
    entry: &Node,
    path: &str,
    ctx: &mut Ctx,
) -> Result<Imported, Diagnostic> {
    doc.object(entry, path)?;
    exact_keys(
        doc,
        entry,
        path,
        &["permissions", "env_vars", "tools", "image"],
    )?;
    let mut rep = ServerReport::new(name, doc.file, path);
    let perms_path = join(path, "permissions");
    permissions(doc, entry.get("permissions"), &perms_path, &mut rep, ctx)?;
    env_vars(doc, entry, path, &mut rep)?;
    let tools = tool_names(doc, entry.get("tools"), &join(path, "tools"), &mut rep)?;
    let version = match entry.get("image").and_then(Node::as_str) {
        Some(image) => super::image_tag(image),
        None => "unversioned".to_owned(),
    };
    rep.sweep(entry, path, &super::reason);
    Ok(Imported {
        report: rep,
        manifest: Some(ManifestSpec { version, tools }),
    })
}

/// `env_vars[{name, secret}]`: secrets become `env:inject`, others `env:read`.
fn env_vars(doc: &Doc, entry: &Node, path: &str, rep: &mut ServerReport) -> Result<(), Diagnostic> {
    let Some(list) = entry.get("env_vars") else {
        return Ok(());
    };
    let lp = join(path, "env_vars");
    for (i, var) in doc.array(list, &lp)?.iter().enumerate() {
        let vp = index(&lp, i);
        doc.object(var, &vp)?;
        exact_keys(doc, var, &vp, &["name", "secret"])?;
        let Some(name_node) = var.get("name") else {
            return Err(doc.error(Code::ImportShape, var, &vp, "an env var needs a `name`"));
        };
        let name = doc.name(name_node, &join(&vp, "name"))?;
        let mut sources = vec![join(&vp, "name")];
        let secret = match var.get("secret") {
            Some(s) => {
                sources.push(join(&vp, "secret"));
                doc.boolean(s, &join(&vp, "secret"))?
            }
            None => false,
        };
        super::env_cap(rep, name, secret, sources);
    }
    Ok(())
}

/// A list of tool names (strings).
pub fn tool_names(
    doc: &Doc,
    node: Option<&Node>,
    path: &str,
    rep: &mut ServerReport,
) -> Result<Vec<String>, Diagnostic> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    let mut tools: Vec<String> = Vec::new();
    for (i, t) in doc.array(node, path)?.iter().enumerate() {
        let t = doc.name(t, &index(path, i))?;
        if !tools.iter().any(|x| x == t) {
            tools.push(t.to_owned());
        }
    }
    rep.consume(path);
    Ok(tools)
}

/// A permission profile: `read`/`write` mounts and `network.outbound`.
pub fn permissions(
    doc: &Doc,
    perms: Option<&Node>,
    path: &str,
    rep: &mut ServerReport,
    ctx: &Ctx,
) -> Result<(), Diagnostic> {
    let perms = perms.filter(|p| !p.is_null());
    let Some(perms) = perms else {
        unknown_network(rep, &join(path, "network"), ctx);
        return Ok(());
    };
    doc.object(perms, path)?;
    exact_keys(doc, perms, path, &["read", "write", "network"])?;
    for (key, writable) in [("read", false), ("write", true)] {
        let Some(list) = perms.get(key) else { continue };
        let lp = join(path, key);
        for (i, m) in doc.array(list, &lp)?.iter().enumerate() {
            let mp = index(&lp, i);
            let spec = doc.name(m, &mp)?;
            mount(rep, spec, writable, &mp);
        }
    }
    let np = join(path, "network");
    let outbound = perms
        .get("network")
        .filter(|n| !n.is_null())
        .map(|n| {
            doc.object(n, &np)?;
            exact_keys(doc, n, &np, &["outbound"])?;
            Ok(n.get("outbound"))
        })
        .transpose()?
        .flatten()
        .filter(|o| !o.is_null());
    match outbound {
        None => unknown_network(rep, &join(&np, "outbound"), ctx),
        Some(o) => outbound_rules(doc, o, &join(&np, "outbound"), rep)?,
    }
    Ok(())
}

/// A ToolHive mount: `path` or `host:container`.
fn mount(rep: &mut ServerReport, spec: &str, writable: bool, source: &str) {
    let (host, container) = match spec.split_once(':') {
        Some((h, c)) => (h, Some(c)),
        None => (spec, None),
    };
    let host = super::trim_path(host);
    let actions = if writable { "read,write" } else { "read" };
    if let Some(why) = super::literal_path_error(&host) {
        rep.drop_cap(format!("fs:{actions}:{host}"), vec![source.to_owned()], why);
        return;
    }
    let note = container.filter(|c| *c != host).map(|c| {
        format!("mounted at {c} in the publisher's container; capgate binds {host} at {host}")
    });
    rep.grant(
        format!("fs:{actions}:{host}"),
        vec![source.to_owned()],
        note,
    );
}

/// `network.outbound{allow_host, allow_port, insecure_allow_all}`.
fn outbound_rules(
    doc: &Doc,
    o: &Node,
    path: &str,
    rep: &mut ServerReport,
) -> Result<(), Diagnostic> {
    doc.object(o, path)?;
    exact_keys(
        doc,
        o,
        path,
        &["allow_host", "allow_port", "insecure_allow_all"],
    )?;
    let hp = join(path, "allow_host");
    let pp = join(path, "allow_port");
    let ip = join(path, "insecure_allow_all");
    let hosts: Vec<(String, String)> = match o.get("allow_host") {
        Some(n) => doc
            .array(n, &hp)?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                doc.name(h, &index(&hp, i))
                    .map(|s| (s.to_owned(), index(&hp, i)))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let ports: Vec<(u16, String)> = match o.get("allow_port") {
        Some(n) => doc
            .array(n, &pp)?
            .iter()
            .enumerate()
            .map(|(i, p)| doc.port(p, &index(&pp, i)).map(|p| (p, index(&pp, i))))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let insecure = match o.get("insecure_allow_all") {
        Some(n) => doc.boolean(n, &ip)?,
        None => false,
    };
    if insecure {
        rep.network = "all";
        rep.grant(
            "net:connect:*".to_owned(),
            vec![ip.clone()],
            Some("insecure_allow_all: ToolHive allows every destination on every port".to_owned()),
        );
        rep.note("insecure_allow_all is set: the manifest grants net:connect:* (any public destination, any port); review whether the server needs it");
        if !hosts.is_empty() {
            rep.note("insecure_allow_all contradicts the allow_host list: ToolHive allows everything, so the host list is not carried over");
        }
        for (_, p) in &hosts {
            rep.not_carried(
                p,
                "ignored: insecure_allow_all already allows every host (contradictory grant)",
            );
        }
        for (_, p) in &ports {
            rep.not_carried(
                p,
                "ignored: with insecure_allow_all ToolHive allows every port",
            );
        }
        return Ok(());
    }
    if o.get("insecure_allow_all").is_some() {
        rep.consume(&ip);
    }
    if hosts.is_empty() && ports.is_empty() {
        rep.network = "none";
        rep.consume(path);
        rep.note("the outbound section allows nothing: ToolHive denies all egress, so the manifest has no net capability");
        return Ok(());
    }
    rep.network = "allow-list";
    if hosts.is_empty() {
        rep.note("allow_port without allow_host: ToolHive allows any host on those ports");
        for (p, ps) in &ports {
            rep.grant(
                format!("net:connect:*:{p}"),
                vec![ps.clone()],
                Some("allow_port without allow_host: any host on this port".to_owned()),
            );
        }
        return Ok(());
    }
    // Every host with every port: a few kilobytes of hostile input could ask
    // for millions of capabilities.
    if hosts.len().saturating_mul(ports.len().max(1)) > MAX_HOST_PORTS {
        return Err(doc.error(
            Code::ImportShape,
            o,
            path,
            format!(
                "{} hosts with {} ports are {} capabilities; the import takes at most {MAX_HOST_PORTS}",
                hosts.len(),
                ports.len(),
                hosts.len().saturating_mul(ports.len())
            ),
        ));
    }
    let mut granted_any = false;
    for (raw, hs) in &hosts {
        let names = match host_names(raw) {
            Ok(names) => names,
            Err(NoHost::Loopback) => {
                rep.drop_cap(
                    format!("net:connect:{raw}"),
                    vec![hs.clone()],
                    "localhost is the sandbox itself (ToolHive: the container), not a destination to grant",
                );
                rep.note(format!(
                    "{raw} in allow_host means the server's own sandbox: dropped"
                ));
                continue;
            }
            Err(NoHost::Star) => {
                rep.drop_cap(
                    format!("net:connect:{raw}"),
                    vec![hs.clone()],
                    "a `*` other than a leading `*.` is no wildcard to ToolHive (its squid dstdomain has none): the entry matches no host, so it grants none",
                );
                continue;
            }
        };
        for (host, note) in names {
            if ports.is_empty() {
                granted_any |= rep.grant(net_cap(&host, None), vec![hs.clone()], note.clone());
            }
            for (p, ps) in &ports {
                granted_any |= rep.grant(
                    net_cap(&host, Some(*p)),
                    vec![hs.clone(), ps.clone()],
                    note.clone(),
                );
            }
        }
    }
    if !granted_any {
        // Every host was dropped: the list still restricted the hosts, so this is
        // deny-all, never "any host on these ports".
        rep.network = "none";
        for (_, ps) in &ports {
            rep.not_carried(
                ps,
                "every host of allow_host was dropped, so no destination is left for this port",
            );
        }
    }
    Ok(())
}

/// The most capabilities one `allow_host` × `allow_port` may give.
const MAX_HOST_PORTS: usize = 10_000;

/// Why an `allow_host` entry grants nothing.
enum NoHost {
    /// The sandbox itself.
    Loopback,
    /// A `*` that is not the whole first label of `*.name`.
    Star,
}

/// The capgate hosts for one `allow_host` entry.
fn host_names(raw: &str) -> Result<Vec<(String, Option<String>)>, NoHost> {
    let h = raw.trim().to_ascii_lowercase();
    if loopback(&h) {
        return Err(NoHost::Loopback);
    }
    let apex = h.strip_prefix("*.").or_else(|| h.strip_prefix('.'));
    // Squid's dstdomain has no `*`: ToolHive writes the entry verbatim, so a
    // `*` anywhere else (`*`, `.*`, `*.*.com`) matches no host there. Only
    // Envoy's leading `*.` is a wildcard.
    if apex.unwrap_or(&h).contains('*') {
        return Err(NoHost::Star);
    }
    Ok(match apex {
        Some(apex) => {
            let note = if h.starts_with('*') {
                format!("{raw}: ToolHive's Envoy backend reads *.name as .name, the apex {apex} and every subdomain")
            } else {
                format!("{raw} is a Squid dstdomain wildcard: the apex {apex} and every subdomain")
            };
            vec![
                (apex.to_owned(), Some(note.clone())),
                (format!("*.{apex}"), Some(note)),
            ]
        }
        None => vec![(h, None)],
    })
}
