//! MCP registry `server.json` (schema 2025-12-11, camelCase; the 2025-07-09
//! snake_case spellings are read too): `packages[].environmentVariables`
//! (`isSecret` → `env:inject`, others `env:read`) and, for the permissions,
//! ToolHive's publisher extension
//! `_meta["io.modelcontextprotocol.registry/publisher-provided"]["io.github.stacklok"][<identifier>].permissions`,
//! read with ToolHive's semantics. A server with only `remotes` runs at the
//! publisher's URL: nothing to sandbox.

use super::report::ServerReport;
use super::tree::{index, join, Doc, Node};
use super::{exact_keys, toolhive, Ctx, Imported, ManifestSpec};
use crate::diag::{quote, Code, Diagnostic};

const PUBLISHER: &str = "io.modelcontextprotocol.registry/publisher-provided";
const STACKLOK: &str = "io.github.stacklok";

/// A member under its current (camelCase) or 2025-07-09 (snake_case) name.
fn get2<'n>(
    node: &'n Node,
    camel: &'static str,
    snake: &'static str,
) -> Option<(&'n Node, &'static str)> {
    match node.get(camel) {
        Some(n) => Some((n, camel)),
        None => node.get(snake).map(|n| (n, snake)),
    }
}

pub fn import(doc: &Doc, root: &Node, ctx: &mut Ctx) -> Result<Vec<Imported>, Diagnostic> {
    doc.object(root, "")?;
    let Some(name) = root.get("name") else {
        return Err(doc.error(
            Code::ImportShape,
            root,
            "name",
            "a server.json needs a `name`",
        ));
    };
    let name = doc.name(name, "name")?.to_owned();
    if !ctx.wanted(&name) {
        return Ok(Vec::new());
    }
    let mut rep = ServerReport::new(&name, doc.file, "");
    rep.consume("name");
    // The registry's Go types (which ToolHive decodes with) match these keys
    // regardless of case: a variant (`_Meta`, `Packages`) is an error, never
    // an ignored field that would read as "no publisher permissions".
    exact_keys(
        doc,
        root,
        "",
        &["name", "version", "packages", "remotes", "_meta"],
    )?;
    let meta = root.get("_meta");
    if let Some(m) = meta {
        exact_keys(doc, m, "_meta", &[PUBLISHER])?;
    }
    let publisher = meta.and_then(|m| m.get(PUBLISHER));
    if let Some(p) = publisher {
        exact_keys(doc, p, &join("_meta", PUBLISHER), &[STACKLOK])?;
    }
    let ext_path = join(&join("_meta", PUBLISHER), STACKLOK);
    let ext = publisher.and_then(|p| p.get(STACKLOK));
    let packages = match root.get("packages") {
        Some(p) => doc.array(p, "packages")?,
        None => &[],
    };
    let has_remotes = root
        .get("remotes")
        .is_some_and(|r| matches!(&r.value, super::tree::Value::Array(a) if !a.is_empty()));
    if packages.is_empty() {
        rep.status = "nothing-to-sandbox";
        rep.network = "none";
        rep.note(if has_remotes {
            "only remotes: the server runs at the publisher's URL, nothing runs locally to sandbox"
        } else {
            "no packages: nothing runs locally to sandbox"
        });
        rep.sweep(root, "", &super::reason);
        return Ok(vec![Imported {
            report: rep,
            manifest: None,
        }]);
    }
    // The package with publisher permissions, else the first.
    let identifier = |p: &Node| {
        p.get("identifier")
            .and_then(Node::as_str)
            .map(str::to_owned)
    };
    let perms_of = |id: &str| {
        ext.and_then(|e| e.get(id))
            .and_then(|x| x.get("permissions"))
    };
    let chosen = packages
        .iter()
        .position(|p| identifier(p).is_some_and(|id| perms_of(&id).is_some()))
        .unwrap_or(0);
    for (i, p) in packages.iter().enumerate() {
        let pp = index("packages", i);
        doc.object(p, &pp)?;
        exact_keys(
            doc,
            p,
            &pp,
            &[
                "identifier",
                "version",
                "registryType",
                "registry_type",
                "environmentVariables",
                "environment_variables",
                "runtimeArguments",
                "runtime_arguments",
                "packageArguments",
                "package_arguments",
            ],
        )?;
        if i != chosen {
            rep.not_carried(
                &pp,
                format!("an alternative package; the manifest describes packages[{chosen}] (the first with publisher permissions, else the first): import the file again after reordering to get this one"),
            );
        }
    }
    let pkg = &packages[chosen];
    let pp = index("packages", chosen);
    let id = match pkg.get("identifier") {
        Some(i) => doc.name(i, &join(&pp, "identifier"))?.to_owned(),
        None => {
            return Err(doc.error(
                Code::ImportShape,
                pkg,
                &pp,
                "a package needs an `identifier`",
            ))
        }
    };
    let registry_type = get2(pkg, "registryType", "registry_type")
        .and_then(|(n, _)| n.as_str())
        .unwrap_or("oci")
        .to_owned();
    if registry_type != "oci" {
        rep.note(format!(
            "a {registry_type} package runs on the host through its package runner (npx, uvx, dnx), which fetches {id} from its registry at start: install it beforehand or add a net capability for the registry"
        ));
    }
    // Environment variables.
    if let Some((vars, key)) = get2(pkg, "environmentVariables", "environment_variables") {
        let lp = join(&pp, key);
        for (i, v) in doc.array(vars, &lp)?.iter().enumerate() {
            let vp = index(&lp, i);
            doc.object(v, &vp)?;
            exact_keys(doc, v, &vp, &["name", "isSecret", "is_secret"])?;
            let Some(n) = v.get("name") else {
                return Err(doc.error(
                    Code::ImportShape,
                    v,
                    &vp,
                    "an environment variable needs a `name`",
                ));
            };
            let n = doc.name(n, &join(&vp, "name"))?;
            let mut sources = vec![join(&vp, "name")];
            let secret = match get2(v, "isSecret", "is_secret") {
                Some((s, k)) => {
                    sources.push(join(&vp, k));
                    doc.boolean(s, &join(&vp, k))?
                }
                None => false,
            };
            super::env_cap(&mut rep, n, secret, sources);
        }
    }
    for (camel, snake) in [
        ("runtimeArguments", "runtime_arguments"),
        ("packageArguments", "package_arguments"),
    ] {
        let Some((args, key)) = get2(pkg, camel, snake) else {
            continue;
        };
        let ap = join(&pp, key);
        for (i, a) in doc.array(args, &ap)?.iter().enumerate() {
            let name = a.get("name").and_then(Node::as_str).unwrap_or_default();
            let value = a.get("value").and_then(Node::as_str).unwrap_or_default();
            // `--flag=value` in the name is the flag with that value.
            let (flag, value) = match name.split_once('=') {
                Some((flag, inline)) if flag.starts_with('-') => (flag, inline),
                _ => (name, value),
            };
            if matches!(flag, "--mount" | "-v" | "--volume") || value.contains("type=bind") {
                rep.note(format!(
                    "{}: the publisher mounts a host path chosen at run time ({flag} {value}); add an fs capability for the path you pass",
                    index(&ap, i)
                ));
            }
            if flag == "--network" || flag == "--net" {
                rep.note(format!("{}: the publisher sets the container network ({flag} {value}); not carried over", index(&ap, i)));
            }
            if matches!(
                flag,
                "--privileged"
                    | "--cap-add"
                    | "--device"
                    | "--pid"
                    | "--ipc"
                    | "--userns"
                    | "--security-opt"
            ) {
                rep.note(format!("{}: the publisher widens its own container ({flag} {value}); capgate grants none of it, and a server that needs it will not run in the sandbox", index(&ap, i)));
            }
        }
    }
    // Publisher permissions and tools, under the package's identifier. Entries
    // the extension holds for no package are an error: read as "the publisher
    // says nothing", they would become net:connect:*.
    let entry = ext.and_then(|e| e.get(&id));
    if let Some(super::tree::Value::Object(members)) = ext.map(|e| &e.value) {
        let identifiers: Vec<String> = packages.iter().filter_map(identifier).collect();
        if let Some((key, node)) = members.iter().find(|(k, _)| !identifiers.contains(k)) {
            return Err(doc.error(
                Code::ImportShape,
                node,
                &join(&ext_path, key),
                format!(
                    "publisher entry {} matches no package identifier (packages[{chosen}] is {}): key it by a package's identifier exactly",
                    quote(key),
                    quote(&id)
                ),
            ));
        }
    }
    let ep = join(&ext_path, &id);
    if let Some(entry) = entry {
        exact_keys(doc, entry, &ep, &["permissions", "tools"])?;
    }
    let perms = entry.and_then(|e| e.get("permissions"));
    toolhive::permissions(doc, perms, &join(&ep, "permissions"), &mut rep, ctx)?;
    let tools = toolhive::tool_names(
        doc,
        entry.and_then(|e| e.get("tools")),
        &join(&ep, "tools"),
        &mut rep,
    )?;
    if has_remotes {
        rep.not_carried(
            "remotes",
            "hosted endpoints of the same server: nothing runs locally for them",
        );
    }
    let version = match root.get("version") {
        Some(v) => {
            rep.consume("version");
            doc.name(v, "version")?.to_owned()
        }
        None => "unversioned".to_owned(),
    };
    rep.sweep(root, "", &super::reason);
    Ok(vec![Imported {
        report: rep,
        manifest: Some(ManifestSpec { version, tools }),
    }])
}
