#!/usr/bin/env python3
"""Vendors the real-server corpus into fixtures/import/ for `capgate import` tests.

Usage: python3 scripts/import-fixtures.py PATH/TO/shared/real-servers [fixtures/import]

Keeps only the fields an importer reads (names, images, hosts, ports, env names,
volumes, flags, tool names) and never the publishers' prose (descriptions,
about/meta texts, overviews, examples, icons). Writes PROVENANCE with the source
repository, path and commit of every file. Rerunning it on the same corpus gives
the same bytes.
"""
import json
import os
import shutil
import sys

import yaml


def strip_prose(v):
    """Drops prose keys anywhere below v (JSON Schema parameter descriptions)."""
    if isinstance(v, dict):
        return {k: strip_prose(x) for k, x in v.items()
                if k not in ("description", "title", "example", "examples", "about", "icon")}
    if isinstance(v, list):
        return [strip_prose(x) for x in v]
    return v


def pick(d, keys):
    return {k: d[k] for k in keys if k in d}


def toolhive(src, out, prov):
    reg = json.load(open(os.path.join(src, "toolhive-registry.json")))
    s = reg["source"]
    servers = {}
    for name, e in reg["servers"].items():
        entry = pick(e, ["image", "transport", "target_port", "permissions", "args", "tools"])
        if "env_vars" in e:
            entry["env_vars"] = [pick(v, ["name", "required", "secret"]) for v in e["env_vars"]]
        servers[name] = entry
    os.makedirs(os.path.join(out, "toolhive"), exist_ok=True)
    with open(os.path.join(out, "toolhive", "registry.json"), "w") as f:
        json.dump({"servers": servers}, f, indent=2, sort_keys=False)
        f.write("\n")
    prov.append(f"toolhive/registry.json\t{s['repository']}\t{s['path']}\t{s['commit']}\t{len(servers)} servers")


def docker(src, out, prov):
    base = os.path.join(src, "docker-catalog")
    repo, commit = "docker/mcp-registry", "818bf169b365e7b7d5b117352e32757c54844718"
    dst = os.path.join(out, "docker")
    shutil.rmtree(dst, ignore_errors=True)
    for name in sorted(os.listdir(base)):
        d = yaml.safe_load(open(os.path.join(base, name, "server.yaml")))
        e = pick(d, ["name", "image", "type"])
        if "run" in d:
            e["run"] = pick(d["run"], ["command", "volumes", "allowHosts", "disableNetwork", "env", "user", "ports"])
        if isinstance(d.get("config"), dict):
            c = d["config"]
            cfg = {}
            if "secrets" in c:
                cfg["secrets"] = [pick(x, ["name", "env"]) for x in c["secrets"]]
            if "env" in c:
                cfg["env"] = [pick(x, ["name", "value"]) for x in c["env"]]
            if "parameters" in c:
                cfg["parameters"] = strip_prose(c["parameters"])
            if cfg:
                e["config"] = cfg
        if isinstance(d.get("remote"), dict):
            e["remote"] = pick(d["remote"], ["transport_type", "url"])
        if isinstance(d.get("tools"), list):
            e["tools"] = [pick(t, ["name"]) for t in d["tools"]]
        os.makedirs(os.path.join(dst, name), exist_ok=True)
        with open(os.path.join(dst, name, "server.yaml"), "w") as f:
            yaml.safe_dump(e, f, sort_keys=False, default_flow_style=False, width=1000)
        prov.append(f"docker/{name}/server.yaml\t{repo}\tservers/{name}/server.yaml\t{commit}\t")


def server_json(src, out, prov):
    base = os.path.join(src, "server-json")
    index = json.load(open(os.path.join(base, "INDEX.json")))
    repo = index["source"]["repository"]
    dst = os.path.join(out, "server-json")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    pub = "io.modelcontextprotocol.registry/publisher-provided"
    for item in index["files"]:
        d = json.load(open(os.path.join(base, item["file"])))
        e = pick(d, ["$schema", "name", "version"])
        if "packages" in d:
            pkgs = []
            for p in d["packages"]:
                q = pick(p, ["registryType", "identifier", "version", "transport", "runtimeHint"])
                if "environmentVariables" in p:
                    q["environmentVariables"] = [pick(v, ["name", "isSecret", "isRequired"]) for v in p["environmentVariables"]]
                for k in ("runtimeArguments", "packageArguments"):
                    if k in p:
                        q[k] = strip_prose(p[k])
                pkgs.append(q)
            e["packages"] = pkgs
        if "remotes" in d:
            e["remotes"] = [pick(r, ["type", "url"]) for r in d["remotes"]]
        ext = d.get("_meta", {}).get(pub, {}).get("io.github.stacklok")
        if ext is not None:
            e["_meta"] = {pub: {"io.github.stacklok": {
                k: pick(v, ["permissions", "tools"]) for k, v in ext.items()}}}
        with open(os.path.join(dst, item["file"]), "w") as f:
            json.dump(e, f, indent=2)
            f.write("\n")
        prov.append(f"server-json/{item['file']}\t{repo}\t{item['path']}\t{item['commit']}\t")


def main():
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "import")
    prov = []
    toolhive(src, out, prov)
    docker(src, out, prov)
    server_json(src, out, prov)
    with open(os.path.join(out, "PROVENANCE"), "w") as f:
        f.write("# Vendored by scripts/import-fixtures.py from the project's real-server corpus.\n")
        f.write("# Only fields an importer reads are kept (no descriptions or other prose).\n")
        f.write("# Files under own/ are written by hand for this project (no upstream source).\n")
        f.write("# file\trepository\tpath\tcommit\tnote\n")
        for line in prov:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
