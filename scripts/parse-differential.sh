#!/usr/bin/env bash
# Differential check of the capability grammar: parses the same corpus with
# `examples/parse_lines.rs` built at BASE (a commit) and at the working tree,
# and fails on the first string whose value or error (code, message, span,
# help) differs. Use it for any change to grammar/, src/syntax.rs or the pest
# version (docs/performance.md, "pest 2.8 and mimalloc v2").
#
# Usage: scripts/parse-differential.sh BASE [STRINGS] [SEED]
#   STRINGS: generated strings besides every fixture capability (default 1000000)
# The corpus: every capability string in fixtures/ and tests/, random
# mutations of them, random token strings, and the short ones repeated to 60
# times their length. Needs python3. Builds two release binaries (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: scripts/parse-differential.sh BASE [STRINGS] [SEED]}
STRINGS=${2:-1000000}
SEED=${3:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$PWD/$TARGET_DIR
WORK=$(mktemp -d)
TREE=$WORK/base
trap 'git worktree remove --force "$TREE" 2>/dev/null || true; rm -rf "$WORK"' EXIT

git worktree add --quiet --detach --force "$TREE" "$BASE"
# The harness may be newer than BASE: build BASE's library with this one.
cp examples/parse_lines.rs "$TREE/examples/parse_lines.rs"
(cd "$TREE" && CARGO_TARGET_DIR=$TARGET_DIR/parse-differential-base cargo build --release --quiet --example parse_lines)
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet --example parse_lines

python3 - "$STRINGS" "$SEED" >"$WORK/corpus" <<'PY'
import glob, json, random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
random.seed(seed)
caps = set()
def walk(x):
    if isinstance(x, str) and ':' in x and len(x) < 300:
        caps.add(x)
    elif isinstance(x, list):
        for y in x: walk(y)
    elif isinstance(x, dict):
        for y in x.values(): walk(y)
for f in glob.glob('fixtures/**/*.json', recursive=True) + glob.glob('tests/**/*.json', recursive=True):
    try:
        walk(json.load(open(f)))
    except Exception:
        pass
caps = sorted(caps)
alpha = list('fsnetxcipvlokarwdlmy:/*.,?&="\\-_~+@ 0123456789abcXYZ') + [
    '..', '**', '/..', '/.', '"', ':443', '::', '[', ']', '%', '\t', '\u00e9', '\x00', '\u202e',
    'unix:', 'dbus:', 'x11', 'tzdata', '?nestedSandbox=true', '&', '*.', '1.1.1.1', '"fd00::1"']
heads = ['fs:read:', 'fs:read,write:', 'fs:write:', 'net:connect:', 'exec:spawn:', 'env:read:',
         'env:inject:', 'ipc:connect:', 'clock:', 'assert:', 'fs:', 'net:', '']
def mutate(s):
    s = list(s)
    for _ in range(random.randint(1, 4)):
        op, i = random.random(), random.randint(0, len(s))
        if op < 0.4:
            s.insert(i, random.choice(alpha))
        elif op < 0.7 and s:
            del s[min(i, len(s) - 1)]
        elif s:
            s[min(i, len(s) - 1)] = random.choice(alpha)
    return ''.join(s)
def emit(s):
    print(json.dumps(s))
    if len(s) < 40:
        print(json.dumps(s * 60))
for c in caps:
    emit(c)
for _ in range(n):
    r = random.random()
    if r < 0.5:
        emit(mutate(random.choice(caps)))
    elif r < 0.8:
        emit(random.choice(heads) + ''.join(random.choice(alpha) for _ in range(random.randint(0, 12))))
    else:
        emit(mutate(random.choice(heads) + mutate(random.choice(caps).split(':', 2)[-1])))
PY

"$TARGET_DIR/parse-differential-base/release/examples/parse_lines" <"$WORK/corpus" >"$WORK/base.out"
"$TARGET_DIR/release/examples/parse_lines" <"$WORK/corpus" >"$WORK/head.out"
total=$(wc -l <"$WORK/corpus")
accepted=$(grep -c '^OK' "$WORK/head.out" || true)
if ! cmp -s "$WORK/base.out" "$WORK/head.out"; then
    line=$({ cmp "$WORK/base.out" "$WORK/head.out" || true; } | sed -n 's/.* line \([0-9]*\)$/\1/p')
    echo "parse-differential: results differ from $BASE at corpus line $line:" >&2
    sed -n "${line}p" "$WORK/corpus" >&2
    echo "  $BASE: $(sed -n "${line}p" "$WORK/base.out")" >&2
    echo "  here: $(sed -n "${line}p" "$WORK/head.out")" >&2
    exit 1
fi
echo "parse-differential: $total strings ($accepted accepted), the same value or error as $BASE for every one"
