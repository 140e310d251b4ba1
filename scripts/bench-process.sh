#!/usr/bin/env bash
# Whole-process benchmarks for capgate (docs/performance.md):
#   1. start-up floor: `capgate compile fixtures/manifests/github.json` per target vs /bin/true;
#   2. generated manifests (10 … 3,000 tools × 10 capabilities, seed 42) per target,
#      with the 300 → 3,000 scaling ratio;
#   3. peak resident memory (/usr/bin/time, else getrusage through python3);
#   4. batch throughput: 1,000 manifests through capgate::batch with 1 and all
#      cores, against one `capgate compile` process per manifest.
#
# Usage: scripts/bench-process.sh [RESULTS_DIR]   (default: $CARGO_TARGET_DIR/bench-results)
# Environment: RUNS (floor runs, default 300), GEN_RUNS (default 15),
#              CARGO_TARGET_DIR (default: target),
#              INSTR=1 to add instruction counts (valgrind --tool=callgrind) for
#              300 and 3,000 tools: a load-independent measure of linearity.
# Needs hyperfine and jq. Timings are medians; hyperfine's JSON exports are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${1:-$TARGET_DIR/bench-results}
RUNS=${RUNS:-300}
GEN_RUNS=${GEN_RUNS:-15}
TARGETS=(bwrap docker squid nftables kubernetes systemd srt oci)
SIZES=(10 100 300 1000 3000)

for tool in hyperfine jq; do
    command -v "$tool" >/dev/null || { echo "bench-process: $tool is required" >&2; exit 2; }
done
mkdir -p "$OUT"
cargo build --release --quiet --features testing --bin capgate --example gen_manifest --example batch
BIN=$TARGET_DIR/release/capgate
GEN=$TARGET_DIR/release/examples/gen_manifest
BATCH=$TARGET_DIR/release/examples/batch
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# squid and nftables lower only net: mixed manifests compile with --permissive.
mode() { case $1 in squid | nftables) echo "--permissive" ;; *) echo "" ;; esac; }

# median and min in ms of every command in a hyperfine JSON export, as "command<TAB>median<TAB>min".
medians() { jq -r '.results[] | [.command, (.median * 1000 * 1000 | round / 1000), (.min * 1000 * 1000 | round / 1000)] | @tsv' "$1"; }
median_of() { jq -r --arg c "$2" '.results[] | select(.command == $c) | .median * 1000' "$1"; }

# Peak RSS in KiB of one run (median of 5).
peak_kib() {
    local runs=()
    for _ in 1 2 3 4 5; do
        if [[ -x /usr/bin/time ]]; then
            runs+=("$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)")
        else
            runs+=("$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@")")
        fi
    done
    printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p
}

SUMMARY=$OUT/summary.md
{
    echo "# capgate process benchmarks"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -sr)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
} >"$SUMMARY"

# ---------------------------------------------------------------- 1. floor
echo "== start-up floor (${RUNS} runs each)" >&2
FIXTURE=fixtures/manifests/github.json
cmds=(/bin/true)
for t in "${TARGETS[@]}"; do
    cmds+=("$(echo "$BIN compile $FIXTURE --target $t $(mode "$t")" | sed 's/ *$//')")
done
hyperfine -N --style basic --warmup 20 --runs "$RUNS" --export-json "$OUT/floor.json" "${cmds[@]}" >&2
{
    echo "## Whole process, $FIXTURE (median / min of $RUNS runs)"
    echo
    echo "| command | median ms | min ms | peak RSS KiB |"
    echo "|---|---:|---:|---:|"
    while IFS=$'\t' read -r cmd med min; do
        # shellcheck disable=SC2086 # the command is a word list
        echo "| \`${cmd/$TARGET_DIR\/release\//}\` | $med | $min | $(peak_kib $cmd) |"
    done < <(medians "$OUT/floor.json")
    echo
} >>"$SUMMARY"

# ---------------------------------------------------------------- 2. generated sizes
echo "== generated manifests (${GEN_RUNS} runs each)" >&2
for n in "${SIZES[@]}"; do
    "$GEN" "$n" 10 42 >"$WORK/gen-$n.json"
done
{
    echo "## Whole process, generated manifests (tools × 10 capabilities, seed 42; median ms, peak RSS KiB)"
    echo
    echo "| target | $(printf '%s tools | ' "${SIZES[@]}")3000/300 ratio |"
    echo "|---|$(printf -- '---:|%.0s' "${SIZES[@]}")---:|"
} >>"$SUMMARY"
for t in "${TARGETS[@]}"; do
    cmds=()
    for n in "${SIZES[@]}"; do
        cmds+=("$(echo "$BIN compile $WORK/gen-$n.json --target $t $(mode "$t")" | sed 's/ *$//')")
    done
    hyperfine -N --style basic --warmup 2 --runs "$GEN_RUNS" --export-json "$OUT/gen-$t.json" "${cmds[@]}" >&2
    row="| $t |"
    for i in "${!SIZES[@]}"; do
        med=$(median_of "$OUT/gen-$t.json" "${cmds[$i]}")
        # shellcheck disable=SC2086
        row+=" $(printf '%.2f' "$med") ($(peak_kib ${cmds[$i]})) |"
    done
    m300=$(median_of "$OUT/gen-$t.json" "${cmds[2]}")
    m3000=$(median_of "$OUT/gen-$t.json" "${cmds[4]}")
    row+=" $(jq -n "$m3000 / $m300 * 100 | round / 100") |"
    echo "$row" >>"$SUMMARY"
done
echo >>"$SUMMARY"

# ---------------------------------------------------------------- 3. batch
echo "== batch throughput" >&2
IN=$WORK/batch-in
mkdir -p "$IN"
fixtures=(fixtures/manifests/*.json)
for i in $(seq 0 899); do
    cp "${fixtures[$((i % ${#fixtures[@]}))]}" "$IN/m$i.json"
done
for i in $(seq 900 999); do
    "$GEN" 10 10 "$i" >"$IN/m$i.json"
done
# Artifacts go to a tmpfs when there is one: on ext4, creating 1,000 files right
# after deleting 1,000 costs more than compiling them (inode allocation).
BOUT=$WORK
if [[ -d /dev/shm && -w /dev/shm ]]; then
    BOUT=$(mktemp -d /dev/shm/capgate-bench.XXXXXX)
    trap 'rm -rf "$WORK" "$BOUT"' EXIT
fi
hyperfine -N --style basic --warmup 1 --runs 10 --export-json "$OUT/batch.json" \
    --prepare "rm -rf $BOUT/o" \
    "$BATCH --target bwrap --out $BOUT/o --jobs 1 $IN" \
    "$BATCH --target bwrap --out $BOUT/o --jobs $(nproc) $IN" >&2
hyperfine --style basic --warmup 1 --runs 3 --export-json "$OUT/batch-loop.json" \
    --prepare "rm -rf $BOUT/p && mkdir -p $BOUT/p" \
    "for f in $IN/*.json; do $BIN compile \$f --target bwrap > $BOUT/p/\$(basename \$f); done" >&2
# Control: how much faster are $(nproc) independent single-threaded processes than one?
hyperfine --style basic --warmup 1 --runs 10 --export-json "$OUT/parallel-control.json" \
    --prepare "rm -rf $BOUT/c0 $BOUT/c1 $BOUT/c2" \
    "$BATCH --target bwrap --out $BOUT/c0 --jobs 1 $IN" \
    "$BATCH --target bwrap --out $BOUT/c1 --jobs 1 $IN & $BATCH --target bwrap --out $BOUT/c2 --jobs 1 $IN & wait" >&2
{
    echo "## Batch: 1,000 manifests (900 fixture copies, 100 generated 10-tool), bwrap, artifacts in $BOUT"
    echo
    echo "| how | median s | manifests/s |"
    echo "|---|---:|---:|"
    jq -r '.results[] | [.command, .median] | @tsv' "$OUT/batch.json" "$OUT/batch-loop.json" |
        while IFS=$'\t' read -r cmd med; do
            case $cmd in
            *"--jobs 1 "*) how="capgate::batch, 1 job" ;;
            *--jobs*) how="capgate::batch, $(nproc) jobs" ;;
            *) how="one capgate process per manifest (shell loop)" ;;
            esac
            echo "| $how | $(jq -n "$med * 1000 | round / 1000") | $(jq -n "1000 / $med | round") |"
        done
    read -r one two < <(jq -r '[.results[].median] | @tsv' "$OUT/parallel-control.json")
    echo
    echo "Control: one single-threaded batch process takes $(jq -n "$one * 1000 | round") ms; two of them"
    echo "side by side take $(jq -n "$two * 1000 | round") ms (perfect scaling on 2 cores: the same as one)."
    echo
} >>"$SUMMARY"

# ---------------------------------------------------------------- 4. instructions
if [[ ${INSTR:-0} == 1 ]]; then
    echo "== instruction counts (callgrind; slow)" >&2
    {
        echo "## Instructions per whole process (callgrind), generated manifests"
        echo
        echo "| target | 300 tools | 3000 tools | ratio |"
        echo "|---|---:|---:|---:|"
    } >>"$SUMMARY"
    for t in "${TARGETS[@]}"; do
        counts=()
        for n in 300 3000; do
            # shellcheck disable=SC2046
            valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" compile "$WORK/gen-$n.json" --target "$t" $(mode "$t") \
                >/dev/null 2>"$WORK/cg.txt"
            counts+=("$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/cg.txt")")
        done
        echo "| $t | ${counts[0]} | ${counts[1]} | $(jq -n "${counts[1]} / ${counts[0]} * 100 | round / 100") |" >>"$SUMMARY"
    done
    echo >>"$SUMMARY"
fi

cat "$SUMMARY"
