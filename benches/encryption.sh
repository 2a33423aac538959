#!/usr/bin/env bash
# benches/encryption.sh: cairn encrypted against unencrypted, side by side in
# one run, on the benchmark model (issue 14's speed goal: the encrypted
# figures at >= 0.85x the unencrypted ones, memory unchanged).
#
#   benches/encryption.sh                      # SIZE=2G, ROUNDS=3
#   SIZE=512M ROUNDS=5 benches/encryption.sh
#
# Each round, for each mode (the mode that goes first alternates): init a
# fresh repository, snapshot v1, snapshot v2 (1 tensor in 8 perturbed, same
# path), restore v2 into an empty directory and `cmp` it. Wall seconds and
# peak RSS from GNU time; the medians and the ratio (unencrypted wall /
# encrypted wall: 1.0 = as fast) are printed as a markdown table.
#
# Environment: SIZE, ROUNDS, WORK (default /tmp/cairn-enc-bench), CAIRN_BIN
# and GEN_MODEL (default: build both in release).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE=${SIZE:-2G}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-/tmp/cairn-enc-bench}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -z ${CAIRN_BIN:-} || -z ${GEN_MODEL:-} ]]; then
    (cd "$ROOT" && cargo build --release -q --bin cairn --example gen_model)
fi
CAIRN_BIN=${CAIRN_BIN:-$TARGET_DIR/release/cairn}
GEN_MODEL=${GEN_MODEL:-$TARGET_DIR/release/examples/gen_model}
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR=$WORK/cache

rm -rf "$WORK"
mkdir -p "$WORK/v1" "$WORK/v2" "$WORK/logs"
"$GEN_MODEL" "$WORK/v1/model.safetensors" --size "$SIZE" --seed 1 --tensors-mb 32
"$GEN_MODEL" "$WORK/v2/model.safetensors" --size "$SIZE" --seed 1 --tensors-mb 32 --perturb 8
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# timed NAME CMD...: runs CMD under GNU time; appends "NAME wall rss" to results.
timed() {
    local name=$1
    shift
    sync
    /usr/bin/time -f "%e %M" -o "$WORK/logs/time" "$@" >"$WORK/logs/$name.log" 2>&1 ||
        { cat "$WORK/logs/$name.log" >&2; exit 1; }
    echo "$name $(cat "$WORK/logs/time")" >>"$WORK/results"
}

run_mode() {
    local mode=$1 round=$2 repo=$WORK/repo-$1 src=$WORK/src
    local enc=()
    [[ $mode == encrypted ]] && enc=(--encryption)
    rm -rf "$repo" "$src" "$WORK/restore" "$WORK/cache"
    "$CAIRN_BIN" init --repo "$repo" "${enc[@]}" -q
    mkdir -p "$src"
    cp "$WORK/v1/model.safetensors" "$src/"
    cat "$src/model.safetensors" >/dev/null
    timed "$mode.snap1.$round" "$CAIRN_BIN" --repo "$repo" snapshot "$src" --kind model --name m -q
    cp "$WORK/v2/model.safetensors" "$src/model.safetensors.tmp"
    mv "$src/model.safetensors.tmp" "$src/model.safetensors"
    cat "$src/model.safetensors" >/dev/null
    timed "$mode.snap2.$round" "$CAIRN_BIN" --repo "$repo" snapshot "$src" --kind model --name m -q
    timed "$mode.restore.$round" "$CAIRN_BIN" --repo "$repo" restore m "$WORK/restore" -q
    # Sources are stored under their path as given: $src is absolute.
    cmp "$WORK/v2/model.safetensors" "$WORK/restore/${src#/}/model.safetensors"
}

: >"$WORK/results"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(plain encrypted); else order=(encrypted plain); fi
    for mode in "${order[@]}"; do run_mode "$mode" "$r"; done
done

# median FIELD NAME-PREFIX: the median of column FIELD (2 wall, 3 rss KiB).
median() {
    grep "^$2\." "$WORK/results" | awk -v f="$1" '{print $f}' | sort -n |
        awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

echo "## cairn encrypted vs unencrypted: $SIZE model, $ROUNDS rounds, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); medians."
echo
echo "| step | unencrypted s | encrypted s | speed ratio (enc / plain) | RSS MiB plain / enc |"
echo "|---|---:|---:|---:|---:|"
for step in snap1 snap2 restore; do
    p=$(median 2 "plain.$step") e=$(median 2 "encrypted.$step")
    pr=$(median 3 "plain.$step") er=$(median 3 "encrypted.$step")
    awk -v s="$step" -v p="$p" -v e="$e" -v pr="$pr" -v er="$er" 'BEGIN {
        printf "| %s | %.2f | %.2f | %.2fx | %.0f / %.0f |\n", s, p, e, p / e, pr / 1024, er / 1024 }'
done
