#!/usr/bin/env python3
# Copied from the real-servers run of 2026-12-01 (notes: real-servers-run/drive.py), changed only in this line, the shebang and the tool
# descriptions and input schemas added to the summary ("descriptions").
"""Drive a real MCP server over stdio with the official Python SDK.

usage: drive.py SPEC.json [-- COMMAND ARGS...]

SPEC.json: {"label": str, "command": [argv...] (optional if given after --),
            "env": {..} (optional; the launcher's env, NOT the sandbox's),
            "calls": [{"name": str, "tool": str, "args": {...},
                       "expect": "ok" | "deny",
                       "contains": str (optional, must appear in the result text),
                       "absent": str (optional, must NOT appear in the result text)}]}

A call "expect": "ok" passes when the tool returned isError=false (and `contains`
matches).  "expect": "deny" passes when the tool returned isError=true or the
request raised a JSON-RPC error, and, if `absent` is set, the secret text does not
appear.  Prints one line per check and a JSON summary on the last line.
"""
import asyncio, json, sys, os, time, traceback

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text_of(result):
    out = []
    for c in getattr(result, "content", []) or []:
        t = getattr(c, "text", None)
        out.append(t if t is not None else repr(c))
    sc = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if sc:
        out.append(json.dumps(sc))
    return "\n".join(out)


async def main():
    argv = sys.argv[1:]
    spec = json.load(open(argv[0]))
    cmd = spec.get("command")
    if "--" in argv:
        cmd = argv[argv.index("--") + 1:]
    env = spec.get("env")
    if env is not None:
        env = {**env}
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
    summary = {"label": spec.get("label"), "started": False, "tools": [], "checks": []}
    errlog_path = spec.get("errlog", f"/tmp/drive-{spec.get('label','x')}.stderr")
    errlog = open(errlog_path, "w")
    t0 = time.time()
    try:
        async with stdio_client(params, errlog=errlog) as (r, w):
            async with ClientSession(r, w, read_timeout_seconds=60) as s:
                init = await asyncio.wait_for(s.initialize(), 60)
                summary["started"] = True
                si = getattr(init, "server_info", None) or getattr(init, "serverInfo", None)
                summary["server"] = f"{si.name} {si.version}"
                print(f"[{spec.get('label')}] initialized: {summary['server']} in {time.time()-t0:.1f}s")
                tools = await s.list_tools()
                summary["tools"] = [t.name for t in tools.tools]
                summary["descriptions"] = {t.name: (t.description or "") + " " + json.dumps(getattr(t, "inputSchema", None) or getattr(t, "input_schema", None) or {}) for t in tools.tools}
                print(f"[{spec.get('label')}] tools: {summary['tools']}")
                for c in spec.get("calls", []):
                    rec = {"name": c["name"], "expect": c["expect"]}
                    try:
                        res = await asyncio.wait_for(s.call_tool(c["tool"], c.get("args", {})), 60)
                        txt = text_of(res)
                        is_err = bool(getattr(res, "is_error", None) or getattr(res, "isError", False))
                        rec["isError"] = is_err
                        rec["text"] = txt[:400]
                    except Exception as e:  # JSON-RPC error or timeout
                        is_err = True
                        txt = f"EXC {type(e).__name__}: {e}"
                        rec["isError"] = True
                        rec["text"] = txt[:400]
                    ok = (not is_err) if c["expect"] == "ok" else is_err
                    if "contains" in c and c["contains"] not in txt:
                        ok = False
                    if "absent" in c and c["absent"] in txt:
                        ok = False
                    rec["pass"] = ok
                    summary["checks"].append(rec)
                    short = txt.replace("\n", " ")[:160]
                    print(f"[{spec.get('label')}] {'PASS' if ok else 'FAIL'} {c['name']} (expect {c['expect']}, isError={is_err}): {short}")
    except BaseException as e:
        summary["error"] = f"{type(e).__name__}: {e}"
        print(f"[{spec.get('label')}] CLIENT ERROR: {summary['error']}")
        traceback.print_exc(limit=3)
    errlog.close()
    summary["stderr_tail"] = open(errlog_path).read()[-800:]
    print("SUMMARY " + json.dumps(summary))
    return 0 if summary["started"] and all(c["pass"] for c in summary["checks"]) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
