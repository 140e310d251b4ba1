#!/usr/bin/env bash
# Benchmark of `capgate run` with network (docs/performance.md, "capgate run with network"), as
# root: time to the first byte of an HTTP response fetched through the egress proxy by a fresh
# sandbox (`curl http://allowed.test:8080/`), from process start, side by side with
# sandbox-runtime (`srt`) given the same single allowed domain, and with no sandbox.
# Everything happens in two network namespaces the script creates (the client's, and the
# upstream's on 11.0.0.2:8080, joined by a veth; allowed.test in /etc/netns/NS/hosts); nothing
# leaves the machine.
# Needs: bwrap, setpriv, squid, nft, ip, nsenter, curl, python3; srt from .ci/run in
# $CAPGATE_MCP_PREFIX (default /opt/capgate-mcp) with ripgrep and socat (apt-get install ripgrep
# socat). Usage: scripts/bench-net.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
CAPGATE=${CAPGATE:-target/release/capgate}
PREFIX=${CAPGATE_MCP_PREFIX:-/opt/capgate-mcp}
SRT="$PREFIX/npm/bin/srt"
[ -x "$CAPGATE" ] || cargo build --release
NS=cgbench$$
UNS=cgbenchup$$
WORK=$(mktemp -d /var/tmp/capgate-bench-net.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  [ -n "${UP:-}" ] && kill "$UP" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip netns del "$UNS" 2>/dev/null || true
  rm -rf "/etc/netns/$NS" "$WORK"
}
trap cleanup EXIT
# The client namespace (capgate, srt) and the upstream's, joined by a veth: srt refuses a
# destination that is one of its own host's addresses.
ip netns add "$NS"
ip netns add "$UNS"
ip -n "$NS" link set lo up
ip -n "$UNS" link set lo up
ip -n "$NS" link add cgbc type veth peer name cgbu netns "$UNS"
ip -n "$NS" addr add 10.77.0.1/30 dev cgbc
ip -n "$UNS" addr add 10.77.0.2/30 dev cgbu
ip -n "$UNS" addr add 11.0.0.2/32 dev lo
ip -n "$NS" link set cgbc up
ip -n "$UNS" link set cgbu up
ip -n "$NS" route add 11.0.0.0/24 via 10.77.0.2
mkdir -p "/etc/netns/$NS"
printf '127.0.0.1 localhost\n::1 localhost\n11.0.0.2 allowed.test\n' > "/etc/netns/$NS/hosts"
ip netns exec "$UNS" python3 tests/run/upstream.py "$WORK/upstream.log" --tcp 11.0.0.2:8080 &
UP=$!
for _ in $(seq 100); do grep -q READY "$WORK/upstream.log" 2>/dev/null && break; sleep 0.05; done

cat > "$WORK/net.json" <<'JSON'
{"name":"bench-net","version":"1","grammar":"0.0","serverCapabilities":["net:connect:allowed.test:8080"],"tools":[]}
JSON
cat > "$WORK/srt.json" <<'JSON'
{"network":{"allowedDomains":["allowed.test"],"deniedDomains":[]},
 "filesystem":{"denyRead":[],"allowWrite":[],"denyWrite":[]}}
JSON

echo "# machine: $(nproc) cores, $(uname -r); bwrap $(bwrap --version | cut -d' ' -f2); $(squid -v | head -1); capgate $($CAPGATE --version | cut -d' ' -f2); srt $(node -p "require('$PREFIX/npm/lib/node_modules/@anthropic-ai/sandbox-runtime/package.json').version" 2>/dev/null || echo '?'); $(date -u +%FT%TZ)"
echo
echo "## time to first byte through the proxy from a fresh sandbox ($RUNS runs each, interleaved)"
ip netns exec "$NS" python3 - "$RUNS" "$CAPGATE" "$WORK" "$SRT" <<'PY'
import os, subprocess, sys, time, statistics
runs, cg, work, srt = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
url = "http://allowed.test:8080/bench"
curl = ["/usr/bin/curl", "-s", "-m", "10", url]
variants = [
    ("curl, no sandbox, no proxy", curl),
    ("capgate run (bwrap + private squid + nftables)", [cg, "run", f"{work}/net.json", "--"] + curl),
    # srt reads options anywhere on its command line: the command goes as one -c string.
    ("srt (sandbox-runtime)", [srt, "-s", f"{work}/srt.json", "-c", " ".join(curl)]),
]
times = {n: [] for n, _ in variants}
errors = {}
for i in range(runs):
    for name, cmd in variants:
        if name in errors:
            continue
        s = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.read(1)
        t = (time.perf_counter() - s) * 1000
        rest = p.stdout.read()
        p.wait(timeout=30)
        if first + rest != b"HIT 11.0.0.2:8080 /bench\n":
            errors[name] = (first + rest + p.stderr.read()).decode(errors="replace").strip()[:300]
            continue
        times[name].append(t)
for name, _ in variants:
    if name in errors:
        print(f"{name}: FAILED: {errors[name]}")
    else:
        t = times[name]
        print(f"{name}: median {statistics.median(t):.0f} ms, min {min(t):.0f} ms, max {max(t):.0f} ms")
PY
