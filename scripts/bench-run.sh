#!/usr/bin/env bash
# Benchmark of `capgate run` (docs/performance.md, "capgate run"), as root:
#  1. start-up overhead of `capgate run M -- /bin/true` over the same launcher + bwrap argv
#     run by hand (hyperfine when installed, else a python loop);
#  2. time to the first MCP response (initialize) of server-memory: bare node, under
#     `capgate run`, and under sandbox-runtime (`srt`) with equivalent settings, side by side.
# Needs: bwrap, setpriv, node, python3; the servers of .ci/run in $CAPGATE_MCP_PREFIX
# (default /opt/capgate-mcp: npm/ has server-memory and @anthropic-ai/sandbox-runtime);
# srt needs ripgrep and socat (apt-get install ripgrep socat). Usage: scripts/bench-run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
CAPGATE=${CAPGATE:-target/release/capgate}
PREFIX=${CAPGATE_MCP_PREFIX:-/opt/capgate-mcp}
[ -x "$CAPGATE" ] || cargo build --release
WORK=$(mktemp -d /var/tmp/capgate-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
mkdir "$WORK/memory" && chown 65534:65534 "$WORK/memory"

echo "# machine: $(nproc) cores, $(uname -r); bwrap $(bwrap --version | cut -d' ' -f2); capgate $($CAPGATE --version | cut -d' ' -f2); $(date -u +%FT%TZ)"

# ---------------------------------------------------------------- 1. start-up
cat > "$WORK/empty.json" <<'JSON'
{"name":"bench","version":"1","grammar":"0.0","serverCapabilities":[],"tools":[]}
JSON
# The same command line `capgate run` execs, written out by hand.
mapfile -t BARE < <("$CAPGATE" compile "$WORK/empty.json" | python3 -c '
import json,sys; a=json.load(sys.stdin)
for x in a["launcher"] + ["/usr/bin/bwrap"] + a["argv"] + ["--", "/bin/true"]: print(x)')
printf '%q ' "${BARE[@]}" > "$WORK/bare.sh"
echo
echo "## 1. start-up: /bin/true in the sandbox ($RUNS runs)"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 3 --runs "$RUNS" --style basic \
    -n "bare launcher + bwrap" "$(cat "$WORK/bare.sh")" \
    -n "capgate run" "$CAPGATE run $WORK/empty.json -- /bin/true"
else
  python3 - "$RUNS" "$WORK/bare.sh" "$CAPGATE" "$WORK/empty.json" <<'PY'
import subprocess, sys, time, statistics, shlex
runs, bare, cg, m = int(sys.argv[1]), open(sys.argv[2]).read(), sys.argv[3], sys.argv[4]
for name, cmd in [("bare launcher + bwrap", shlex.split(bare)), ("capgate run", [cg, "run", m, "--", "/bin/true"])]:
    t = []
    for _ in range(runs):
        s = time.perf_counter(); subprocess.run(cmd, check=True); t.append((time.perf_counter() - s) * 1000)
    print(f"{name}: median {statistics.median(t):.1f} ms, min {min(t):.1f} ms")
PY
fi

# ---------------------------------------------------------------- 2. first MCP response
MEM="$PREFIX/npm/lib/node_modules/@modelcontextprotocol/server-memory/dist/index.js"
SRT="$PREFIX/npm/bin/srt"
cat > "$WORK/memory.json" <<JSON
{"name":"@modelcontextprotocol/server-memory","version":"2026.8.31","grammar":"0.0",
 "serverCapabilities":["env:read:MEMORY_FILE_PATH","fs:read,write,create:$WORK/memory/**"],"tools":[]}
JSON
# srt with the equivalent policy: no network, writes only to the memory directory.
cat > "$WORK/srt.json" <<JSON
{"network":{"allowedDomains":[],"deniedDomains":[]},
 "filesystem":{"denyRead":[],"allowWrite":["$WORK/memory"],"denyWrite":[]}}
JSON
echo
echo "## 2. server-memory: time to the initialize response ($RUNS runs each, interleaved)"
MEMORY_FILE_PATH="$WORK/memory/memory.jsonl" python3 - "$RUNS" "$CAPGATE" "$WORK" "$MEM" "$SRT" <<'PY'
import json, os, subprocess, sys, time, statistics
runs, cg, work, mem, srt = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}) + "\n"
variants = [
    ("bare node (no sandbox)", ["/usr/bin/node", mem]),
    ("capgate run (bwrap)", [cg, "run", f"{work}/memory.json", "--", "/usr/bin/node", mem]),
    ("srt (sandbox-runtime)", [srt, "-s", f"{work}/srt.json", "/usr/bin/node", mem]),
]
times = {n: [] for n, _ in variants}
errors = {}
for i in range(runs):
    for name, cmd in variants:
        if name in errors: continue
        s = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(init.encode()); p.stdin.flush()
        line = p.stdout.readline()
        t = (time.perf_counter() - s) * 1000
        p.stdin.close(); p.wait(timeout=30)
        if b'"result"' not in line:
            errors[name] = (line + p.stderr.read()).decode(errors="replace").strip()[:300]; continue
        times[name].append(t)
for name, _ in variants:
    if name in errors:
        print(f"{name}: FAILED: {errors[name]}")
    else:
        t = times[name]
        print(f"{name}: median {statistics.median(t):.0f} ms, min {min(t):.0f} ms, max {max(t):.0f} ms")
PY
