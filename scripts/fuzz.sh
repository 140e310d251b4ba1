#!/usr/bin/env bash
# Fuzz capgate's grammar and manifest → every target.
#
#   scripts/fuzz.sh [--seconds N] [--engine auto|libfuzzer|stable] [grammar|manifest ...]
#
# --engine libfuzzer: cargo-fuzz targets in fuzz/ (needs a nightly toolchain and
#   `cargo install cargo-fuzz`), N seconds per target, seed corpus built from
#   fixtures/**/*.json (whole manifests for `manifest`, their capability strings
#   for `grammar`). Crashes land in fuzz/artifacts/<target>/.
# --engine stable: the proptest-free mutation fuzzer in tests/fuzz.rs (release
#   build, same oracle, same seeds), N seconds in total.
# --engine auto (default): libfuzzer when `cargo +nightly fuzz` works, else stable.
#
# `cargo test` already runs a short stable run (tests/fuzz.rs fuzz_smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
engine=auto
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --engine) engine="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        grammar|manifest) targets+=("$1"); shift ;;
        *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(grammar manifest)

if [ "$engine" = auto ]; then
    if cargo +nightly fuzz --version >/dev/null 2>&1; then engine=libfuzzer; else engine=stable; fi
fi

seed_corpus() {
    mkdir -p fuzz/corpus/manifest fuzz/corpus/grammar
    find fixtures -name '*.json' | while read -r f; do
        cp "$f" "fuzz/corpus/manifest/seed-$(echo "$f" | tr '/' '_')"
    done
    python3 - <<'PY'
import json, pathlib, hashlib
out = pathlib.Path("fuzz/corpus/grammar")
for f in pathlib.Path("fixtures").rglob("*.json"):
    try:
        m = json.loads(f.read_bytes())
    except Exception:
        continue
    lists = [m.get("serverCapabilities")] if isinstance(m, dict) else []
    tools = m.get("tools") if isinstance(m, dict) else None
    lists += [t.get("capabilities") for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    for caps in lists:
        for c in caps if isinstance(caps, list) else []:
            if isinstance(c, str):
                data = c.encode("utf-8", "surrogatepass")
                (out / ("seed-" + hashlib.sha1(data).hexdigest())).write_bytes(data)
PY
}

case "$engine" in
    libfuzzer)
        seed_corpus
        for t in "${targets[@]}"; do
            echo "== cargo fuzz run $t for ${seconds}s"
            cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        done
        ;;
    stable)
        echo "== stable mutation fuzzer (tests/fuzz.rs) for ${seconds}s"
        CAPGATE_FUZZ_SECONDS="$seconds" cargo test --release --test fuzz -- --ignored --nocapture fuzz_long
        ;;
    *) echo "fuzz.sh: --engine is auto, libfuzzer or stable" >&2; exit 2 ;;
esac
