//! The Docker MCP catalog: one `server.yaml` per server (docker/mcp-registry).
//!
//! `run.allowHosts` entries are `host:port[/http|/https|/tcp]`;
//! `run.disableNetwork: true` is no network; `config.secrets[].env` are
//! injected secrets and `config.env[].name` plain variables; `run.volumes`
//! are Docker `-v` specs whose `{{server.param|filter...}}` templates the
//! gateway fills from the user's configuration (`volume` maps a path P to
//! `P:P`, `volume-target` is the container side, `into` spreads a list,
//! `or:DEFAULT` supplies a default). Here the values come from `--param`.

use super::report::ServerReport;
use super::tree::{index, join, Doc, Node};
use super::{loopback, net_cap, trim_path, unknown_network, Ctx, Imported, ManifestSpec};
use crate::diag::{quote, Code, Diagnostic};

pub fn import(doc: &Doc, root: &Node, ctx: &mut Ctx) -> Result<Vec<Imported>, Diagnostic> {
    doc.object(root, "")?;
    let Some(name_node) = root.get("name") else {
        return Err(doc.error(
            Code::ImportShape,
            root,
            "name",
            "a server.yaml needs a `name`",
        ));
    };
    let name = doc.name(name_node, "name")?.to_owned();
    if !ctx.wanted(&name) {
        return Ok(Vec::new());
    }
    let mut rep = ServerReport::new(&name, doc.file, "");
    rep.consume("name");
    let kind = match root.get("type") {
        Some(t) => doc.name(t, "type")?.to_owned(),
        None => "server".to_owned(),
    };
    rep.consume("type");
    let elsewhere = match kind.as_str() {
        "server" => None,
        "remote" => Some("a remote server (type: remote): it runs at the publisher's URL, nothing runs locally to sandbox"),
        "poci" => Some("a poci entry (type: poci): each tool call runs its own container image; there is no server process to sandbox"),
        _ => {
            return Err(doc.error(
                Code::ImportShape,
                root.get("type").unwrap_or(root),
                "type",
                format!(
                    "type {}: a catalog entry is `server`, `remote` or `poci`",
                    quote(&kind)
                ),
            ))
        }
    };
    if let Some(why) = elsewhere {
        rep.status = "nothing-to-sandbox";
        rep.network = "none";
        rep.note(why);
        rep.sweep(root, "", &super::reason);
        return Ok(vec![Imported {
            report: rep,
            manifest: None,
        }]);
    }
    let run = root.get("run").filter(|r| !r.is_null());
    if let Some(run) = run {
        doc.object(run, "run")?;
    }
    network(doc, run, &mut rep, ctx)?;
    if let Some(run) = run {
        volumes(doc, run, &mut rep, ctx)?;
        if let Some(env) = run.get("env").filter(|e| !e.is_null()) {
            for (k, v) in doc.object(env, "run.env")? {
                let p = join("run.env", k);
                super::env_cap(&mut rep, k, false, vec![p.clone()]);
                if let Some(value) = v.as_str() {
                    host_in_value(&mut rep, k, value);
                }
            }
        }
        if let Some(cmd) = run.get("command") {
            let secrets: std::collections::HashSet<String> =
                secret_envs(root).into_iter().collect();
            for (i, arg) in doc.array(cmd, "run.command")?.iter().enumerate() {
                let a = arg.as_str().unwrap_or_default();
                for s in interpolated(a).filter(|name| secrets.contains(*name)) {
                    rep.note(format!(
                        "run.command[{i}] interpolates the secret {s} into argv: the value is visible in the process list of the host; pass it by environment instead"
                    ));
                }
            }
        }
    }
    if let Some(config) = root.get("config").filter(|c| !c.is_null()) {
        if let Some(secrets) = config.get("secrets") {
            for (i, s) in doc.array(secrets, "config.secrets")?.iter().enumerate() {
                let sp = index("config.secrets", i);
                doc.object(s, &sp)?;
                let Some(env) = s.get("env") else {
                    return Err(doc.error(
                        Code::ImportShape,
                        s,
                        &sp,
                        "a secret needs an `env` name",
                    ));
                };
                let env = doc.name(env, &join(&sp, "env"))?;
                super::env_cap(&mut rep, env, true, vec![join(&sp, "env")]);
            }
        }
        if let Some(env) = config
            .get("env")
            .filter(|e| matches!(e.value, super::tree::Value::Array(_)))
        {
            for (i, e) in doc.array(env, "config.env")?.iter().enumerate() {
                let ep = index("config.env", i);
                doc.object(e, &ep)?;
                let Some(n) = e.get("name") else {
                    return Err(doc.error(
                        Code::ImportShape,
                        e,
                        &ep,
                        "an env entry needs a `name`",
                    ));
                };
                let n = doc.name(n, &join(&ep, "name"))?;
                super::env_cap(&mut rep, n, false, vec![join(&ep, "name")]);
                if let Some(v) = e.get("value").and_then(Node::as_str) {
                    host_in_value(&mut rep, n, v);
                }
            }
        }
    }
    let tools = match root.get("tools") {
        Some(t) => {
            let mut names = Vec::new();
            for (i, tool) in doc.array(t, "tools")?.iter().enumerate() {
                let tp = index("tools", i);
                let n = tool.get("name").ok_or_else(|| {
                    doc.error(Code::ImportShape, tool, &tp, "a tool needs a `name`")
                })?;
                names.push(doc.name(n, &join(&tp, "name"))?.to_owned());
                rep.consume(&join(&tp, "name"));
            }
            names
        }
        None => Vec::new(),
    };
    let version = root
        .get("image")
        .and_then(Node::as_str)
        .map(super::image_tag)
        .unwrap_or_else(|| "unversioned".to_owned());
    rep.sweep(root, "", &super::reason);
    Ok(vec![Imported {
        report: rep,
        manifest: Some(ManifestSpec { version, tools }),
    }])
}

/// The variable names `$NAME` and `${NAME}` in `arg`, as a shell reads them
/// (the longest name after `$`).
fn interpolated(arg: &str) -> impl Iterator<Item = &str> {
    arg.match_indices('$').filter_map(move |(at, _)| {
        let rest = &arg[at + 1..];
        let braced = rest.strip_prefix('{');
        let body = braced.unwrap_or(rest);
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let name = &body[..len];
        let closed = braced.is_none() || body[len..].starts_with('}');
        (len > 0 && closed && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
    })
}

fn secret_envs(root: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(super::tree::Value::Array(list)) = root
        .get("config")
        .and_then(|c| c.get("secrets"))
        .map(|s| &s.value)
    {
        for s in list {
            if let Some(e) = s.get("env").and_then(Node::as_str) {
                out.push(e.to_owned());
            }
        }
    }
    out
}

/// A variable whose value names the host (`host.docker.internal`, localhost):
/// the publisher reaches the host through the environment, not a network grant.
fn host_in_value(rep: &mut ServerReport, name: &str, value: &str) {
    let v = value.to_ascii_lowercase();
    if v.contains("host.docker.internal") || v.contains("localhost") || v.contains("127.0.0.1") {
        rep.note(format!(
            "{name}={value} points the server at the host; that is host access expressed as an environment value, not a network grant: capgate grants none (add a net capability for the exact address if the server needs it)"
        ));
    }
}

fn network(
    doc: &Doc,
    run: Option<&Node>,
    rep: &mut ServerReport,
    ctx: &Ctx,
) -> Result<(), Diagnostic> {
    let disable = match run.and_then(|r| r.get("disableNetwork")) {
        Some(n) => {
            rep.consume("run.disableNetwork");
            doc.boolean(n, "run.disableNetwork")?
        }
        None => false,
    };
    let hosts = run
        .and_then(|r| r.get("allowHosts"))
        .filter(|h| !h.is_null());
    if disable {
        rep.network = "none";
        rep.note(
            "run.disableNetwork: the server gets no network, so the manifest has no net capability",
        );
        if let Some(h) = hosts {
            rep.note("run.disableNetwork contradicts run.allowHosts: disableNetwork wins");
            for i in 0..doc.array(h, "run.allowHosts")?.len() {
                rep.not_carried(
                    &index("run.allowHosts", i),
                    "ignored: run.disableNetwork removes the network",
                );
            }
        }
        return Ok(());
    }
    let Some(hosts) = hosts else {
        unknown_network(rep, "run.allowHosts", ctx);
        return Ok(());
    };
    rep.network = "allow-list";
    rep.note("run.allowHosts is enforced by the Docker MCP gateway only with --block-network; the manifest always enforces it");
    let list = doc.array(hosts, "run.allowHosts")?;
    if list.is_empty() {
        rep.network = "none";
        rep.consume("run.allowHosts");
    }
    let mut granted_any = false;
    for (i, h) in list.iter().enumerate() {
        let hp = index("run.allowHosts", i);
        let spec = doc.name(h, &hp)?;
        let (hostport, proto) = match spec.rsplit_once('/') {
            Some((hp_, proto)) => (hp_, Some(proto)),
            None => (spec, None),
        };
        if let Some(p) = proto {
            if !matches!(p, "http" | "https" | "tcp") {
                return Err(doc.error(
                    Code::ImportShape,
                    h,
                    &hp,
                    format!("{}: the protocol must be http, https or tcp", quote(spec)),
                ));
            }
        }
        let parsed = if let Some(rest) = hostport.strip_prefix('[') {
            rest.split_once("]:")
        } else {
            hostport.rsplit_once(':')
        };
        let Some((host, port)) = parsed else {
            return Err(doc.error(
                Code::ImportShape,
                h,
                &hp,
                format!("{}: expected host:port[/http|/https|/tcp]", quote(spec)),
            ));
        };
        let port: u16 = match port.parse() {
            Ok(p) if p != 0 && !port.starts_with(['+', '0']) => p,
            _ => {
                return Err(doc.error(
                    Code::ImportShape,
                    h,
                    &hp,
                    format!(
                        "{}: port {} is not an integer from 1 to 65535",
                        quote(spec),
                        quote(port)
                    ),
                ))
            }
        };
        let host = host.to_ascii_lowercase();
        if loopback(&host) {
            rep.drop_cap(
                format!("net:connect:{host}:{port}"),
                vec![hp.clone()],
                "localhost is the sandbox itself, not a destination to grant",
            );
            continue;
        }
        let note = match (host.as_str(), proto) {
            ("*", _) => Some(format!("{spec}: any host on port {port}")),
            (_, Some(p)) => Some(format!(
                "/{p}: capgate grants the TCP connection; the protocol is not enforced"
            )),
            _ => None,
        };
        granted_any |= rep.grant(net_cap(&host, Some(port)), vec![hp], note);
    }
    if !granted_any {
        // Every host was dropped (or none listed): the list still restricted the
        // hosts, so the server gets no network.
        rep.network = "none";
    }
    Ok(())
}

fn volumes(doc: &Doc, run: &Node, rep: &mut ServerReport, ctx: &mut Ctx) -> Result<(), Diagnostic> {
    let Some(list) = run.get("volumes") else {
        return Ok(());
    };
    for (i, v) in doc.array(list, "run.volumes")?.iter().enumerate() {
        let vp = index("run.volumes", i);
        let template = doc.name(v, &vp)?;
        let specs = super::template::expand(doc, v, &vp, template, &rep.server, ctx)?;
        if specs.is_empty() {
            rep.not_carried(&vp, "the template expands to no volume (its `or:` default is empty and no --param gives a value)");
        }
        for spec in specs {
            volume(doc, v, &vp, &spec, rep)?;
        }
    }
    Ok(())
}

fn volume(
    doc: &Doc,
    node: &Node,
    vp: &str,
    spec: &super::template::Expanded,
    rep: &mut ServerReport,
) -> Result<(), Diagnostic> {
    // The gateway trims the spec and each of its parts (`parseDockerVolumeBind`).
    let parts: Vec<&str> = spec.text.trim().split(':').map(str::trim).collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => {
            rep.not_carried(
                vp,
                format!("anonymous volume at {dst}: engine-managed storage, not a host path"),
            );
            return Ok(());
        }
        // An empty side is a spec Docker refuses, not a mount to grant.
        [src, dst] | [src, dst, _] if src.is_empty() || dst.is_empty() => {
            return Err(doc.error(
                Code::ImportShape,
                node,
                vp,
                format!("volume {}: an empty source or target", quote(&spec.text)),
            ))
        }
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => {
            return Err(doc.error(
                Code::ImportShape,
                node,
                vp,
                format!(
                    "volume {} is not SOURCE:TARGET[:OPTIONS]",
                    quote(&spec.text)
                ),
            ))
        }
    };
    let mut sources = vec![vp.to_owned()];
    sources.extend(spec.params.iter().map(|p| format!("--param {p}")));
    if !src.starts_with('/') {
        if !spec.params.is_empty() && spec.src_from_param {
            return Err(Diagnostic::new(
                Code::ImportParamInvalid,
                format!(
                    "--param {}: {} is not an absolute host path (needed by {vp})",
                    spec.params.join(", --param "),
                    quote(src)
                ),
            )
            .at(doc.location(node)));
        }
        rep.not_carried(
            vp,
            format!(
                "named volume {}: engine-managed storage, not a host path",
                quote(src)
            ),
        );
        return Ok(());
    }
    let host = trim_path(src);
    let writable = writable(opts).map_err(|why| {
        doc.error(
            Code::ImportShape,
            node,
            vp,
            format!("volume {}: {why}", quote(&spec.text)),
        )
    })?;
    let actions = if writable { "read,write" } else { "read" };
    // A grant a `--param` value made impossible is that value's error.
    let param_invalid = |cap: &str, why: &str| {
        Diagnostic::new(
            Code::ImportParamInvalid,
            format!(
                "--param {}: {cap} for {vp}: {why}",
                spec.params.join(", --param ")
            ),
        )
        .at(doc.location(node))
    };
    if let Some(why) = super::literal_path_error(&host) {
        let cap = format!("fs:{actions}:{host}");
        if spec.src_from_param {
            return Err(param_invalid(&cap, &why));
        }
        rep.drop_cap(cap, sources, why);
        return Ok(());
    }
    let mut notes = Vec::new();
    if opts.trim().is_empty() {
        notes.push("no mode: the Docker MCP gateway mounts a host path read-only unless its operator allows writable binds there, so capgate grants read (declare write if the server needs it)".to_owned());
    }
    if dst != host {
        notes.push(format!(
            "mounted at {dst} in the publisher's image; capgate binds {host} at {host}, so point the server at {host}"
        ));
    }
    if credential(&host, dst, &spec.params) {
        notes.push("a credential mounted as a file: the sandbox can read it".to_owned());
        rep.note(format!("{vp} mounts a credential file or directory ({dst}): review whether the server needs it"));
    }
    let cap = format!("fs:{actions}:{host}");
    let granted = rep.grant(
        cap.clone(),
        sources,
        (!notes.is_empty()).then(|| notes.join("; ")),
    );
    if !granted && spec.src_from_param {
        let e = rep
            .dropped
            .last()
            .map(|d| d.reason.clone())
            .unwrap_or_default();
        return Err(param_invalid(&cap, &e));
    }
    Ok(())
}

/// Whether a volume mounts a credential: by a word in its container path or
/// parameter names, or by a segment of its host path on the Docker MCP
/// gateway's list of credential paths (`disallowedDockerHostPath`, which it
/// refuses to mount).
fn credential(host: &str, dst: &str, params: &[String]) -> bool {
    let named = format!("{dst} {}", params.join(" ")).to_ascii_lowercase();
    let words = [
        "ssh",
        "key",
        "credential",
        "kube",
        ".azure",
        "gcloud",
        "token",
        "secret",
        "keyring",
    ];
    let segments = [
        ".aws",
        ".azure",
        ".config",
        ".docker",
        ".gnupg",
        ".kube",
        ".ssh",
        ".netrc",
        ".npmrc",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_rsa",
    ];
    words.iter().any(|w| named.contains(w))
        || host
            .to_ascii_lowercase()
            .split('/')
            .any(|seg| segments.contains(&seg))
}

/// Whether a volume is writable, read as the Docker MCP gateway reads its
/// options (`dockerVolumeModeReadOnly`: each option trimmed and lower-cased)
/// and mounts it (`normalizeDockerVolumeBind`: a host path without a mode is
/// read-only unless the gateway's operator allows writable binds there): only
/// `rw` makes it writable. An option that is not a Docker bind option is an
/// error (a misspelt `ro`, `r0`, must not pass as a mode), and so are both
/// `ro` and `rw`.
fn writable(opts: &str) -> Result<bool, String> {
    let mut ro = false;
    let mut rw = false;
    for o in opts.split(',') {
        match o.trim().to_ascii_lowercase().as_str() {
            "" | "z" | "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate"
            | "nocopy" | "consistent" | "cached" | "delegated" => {}
            "ro" | "readonly" => ro = true,
            "rw" => rw = true,
            other => {
                return Err(format!(
                    "{} is not a volume option (ro, readonly, rw, z, Z, a propagation mode, nocopy, consistent, cached, delegated)",
                    quote(other)
                ))
            }
        }
    }
    if ro && rw {
        return Err("both read-only and rw: say which".to_owned());
    }
    Ok(rw)
}
