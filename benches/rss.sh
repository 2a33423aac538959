#!/usr/bin/env bash
# benches/rss.sh: peak RSS of cairn's init, snapshot, restore, check and
# check --read-data on a sharded model and on a tree of many small files,
# at two sizes a factor 10 apart, to see whether memory is flat in the data
# size (issue #12: "a 20 GB sharded model (8 safetensors shards) and a
# 200,000-file tree: peak RSS <= 150 MB on snapshot, restore and check").
#
#   benches/rss.sh                          # both sets: small, then big
#   SETS=small benches/rss.sh               # 2 GiB model + 20,000 files only
#   CAIRN_BIN=/work/target-rel/release/cairn SETS="small big" benches/rss.sh
#
# Sets (one workload at a time, its data deleted before the next):
#   small: model = SHARDS shards of SMALL_SHARD (8 x 256M = 2 GiB),
#          tree  = SMALL_FILES files (20,000, about 200 MB)
#   big:   model = SHARDS shards of BIG_SHARD (8 x 2.5G = 20 GiB),
#          tree  = BIG_FILES files (200,000, about 2 GB)
# The model is gen_model's bf16 safetensors (normal values, a scale per
# tensor, 32 MiB tensors), one seed per shard so shards do not deduplicate
# against each other; the tree is gen_tree's JSON/CSV/TOML/binary service
# tree. Each step runs under GNU time (`/usr/bin/time -f %M`, apt package
# `time`), in a repository of its own per workload; restore goes to a fresh
# directory.
#
# Disk: the model's source is deleted once snapshotted (its SHA-256 sums
# kept, and checked against the restore when VERIFY=1), so the peak is
# about repository + one copy of the model: ~40 GB for the big set.
#
# Environment:
#   CAIRN_BIN   cairn to measure [default: cargo build --release -p cairn-cli]
#   GEN_MODEL, GEN_TREE   generators [default: cargo build --release --example]
#   DATA        work directory [default: bench-data/rss, git-ignored]
#   SETS        "small big" [default]; WORKLOADS "model tree" [default]
#   SHARDS (8), SMALL_SHARD (256M), BIG_SHARD (2.5G),
#   SMALL_FILES (20000), BIG_FILES (200000)
#   VERIFY      1 [default]: compare restores with the source (sha256sum -c
#               for the model, diff -r for the tree); 0: trust restore's own
#               SHA-256 verification
#   KEEP        1: keep the generated data and repositories [default 0]
# Output: markdown tables on stdout (peak RSS in MB = 10^6 bytes, and the
# sizes involved); progress and per-step wall times on stderr. Not run in CI.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATA=${DATA:-$ROOT/bench-data/rss}
SETS=${SETS:-small big}
WORKLOADS=${WORKLOADS:-model tree}
SHARDS=${SHARDS:-8}
SMALL_SHARD=${SMALL_SHARD:-256M}
BIG_SHARD=${BIG_SHARD:-2.5G}
SMALL_FILES=${SMALL_FILES:-20000}
BIG_FILES=${BIG_FILES:-200000}
VERIFY=${VERIFY:-1}
KEEP=${KEEP:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TIME=/usr/bin/time
STEPS=(init snapshot restore check "check --read-data")

log() { printf '[rss] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

[[ -x $TIME ]] || die "GNU time is missing: apt-get install time"
CAIRN=${CAIRN_BIN:-}
if [[ -z $CAIRN ]]; then
    (cd "$ROOT" && cargo build --release -p cairn-cli >&2)
    CAIRN=$TARGET_DIR/release/cairn
fi
GEN_MODEL=${GEN_MODEL:-}
GEN_TREE=${GEN_TREE:-}
if [[ -z $GEN_MODEL || -z $GEN_TREE ]]; then
    (cd "$ROOT" && cargo build --release -p cairn --example gen_model --example gen_tree >&2)
    GEN_MODEL=${GEN_MODEL:-$TARGET_DIR/release/examples/gen_model}
    GEN_TREE=${GEN_TREE:-$TARGET_DIR/release/examples/gen_tree}
fi
for b in "$CAIRN" "$GEN_MODEL" "$GEN_TREE"; do [[ -x $b ]] || die "not executable: $b"; done

mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)
mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; }
bytes() { du -sb "$@" | awk '{ s += $1 } END { print s + 0 }'; }
free_bytes() { df -B1 --output=avail "$DATA" | tail -1; }
# size like gen_model's --size (K/M/G = 2^10/2^20/2^30) -> bytes
size_bytes() {
    awk -v s="$1" 'BEGIN { n = s + 0; u = toupper(substr(s, length(s)));
        m = (u == "K") ? 2^10 : (u == "M") ? 2^20 : (u == "G") ? 2^30 : 1; printf "%.0f", n * m }'
}

declare -A RSS SIZE
COLS=()

# measure COL STEP DIR CMD...: run CMD in DIR under GNU time, record its peak RSS.
measure() {
    local col=$1 step=$2 dir=$3; shift 3
    local out=$DATA/time.out start end
    start=$(date +%s.%N)
    if ! (cd "$dir" && "$TIME" -f %M -o "$out" "$@") >"$DATA/step.log" 2>&1; then
        cat "$DATA/step.log" >&2
        die "$col: $step failed: $*"
    fi
    end=$(date +%s.%N)
    RSS[$col|$step]=$(awk '{ printf "%.0f", $1 * 1024 / 1e6 }' "$out")
    log "$col: $step peak RSS ${RSS[$col|$step]} MB, $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
}

# run_workload COL KIND NAME: SRC/$NAME is the source; snapshot, restore, check.
run_workload() {
    local col=$1 kind=$2 name=$3
    local repo=$DATA/repo-$name dest=$DATA/restore-$name
    rm -rf "$repo" "$dest"
    measure "$col" init "$DATA" "$CAIRN" -q --repo "$repo" init
    # Sources are stored under the path as given: snapshot from inside SRC.
    measure "$col" snapshot "$DATA/src" "$CAIRN" -q --repo "$repo" snapshot "$name" --kind "$kind" --name "$name"
    SIZE[$col|repo]=$(bytes "$repo")
    if [[ $kind == model ]]; then rm -rf "${DATA:?}/src/$name"; fi
    measure "$col" restore "$DATA" "$CAIRN" -q --repo "$repo" restore "$name" "$dest"
    if [[ $VERIFY == 1 ]]; then
        if [[ $kind == model ]]; then
            (cd "$dest" && sha256sum --quiet -c "$DATA/$name.sha256") || die "$col: restore differs from the source"
        else
            diff -r "$DATA/src/$name" "$dest/$name" >/dev/null || die "$col: restore differs from the source"
        fi
        log "$col: restore matches the source"
    fi
    rm -rf "$dest"
    measure "$col" check "$DATA" "$CAIRN" -q --repo "$repo" check
    measure "$col" "check --read-data" "$DATA" "$CAIRN" -q --repo "$repo" check --read-data
    [[ $KEEP == 1 ]] || rm -rf "$repo" "${DATA:?}/src"
}

for set in $SETS; do
    case $set in
        small) shard=$SMALL_SHARD files=$SMALL_FILES ;;
        big) shard=$BIG_SHARD files=$BIG_FILES ;;
        *) die "unknown set $set (small, big)" ;;
    esac
    for w in $WORKLOADS; do
        rm -rf "${DATA:?}/src"
        mkdir -p "$DATA/src"
        case $w in
            model)
                total=$(( $(size_bytes "$shard") * SHARDS ))
                col="model $(awk -v b="$total" 'BEGIN { printf "%g", b / 2^30 }') GiB"
                need=$(( total * 22 / 10 ))
                (( $(free_bytes) > need )) || die "$col needs ~$(mb $need) MB free in $DATA"
                name=model-$set
                mkdir -p "$DATA/src/$name"
                log "$col: generating $SHARDS shards of $shard"
                for i in $(seq 1 "$SHARDS"); do
                    f=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$SHARDS")
                    "$GEN_MODEL" "$DATA/src/$name/$f" --size "$shard" --seed "$i" --dtype bf16 >/dev/null 2>&1
                done
                [[ $VERIFY == 1 ]] && (cd "$DATA/src" && sha256sum "$name"/*.safetensors >"$DATA/$name.sha256")
                ;;
            tree)
                col="tree $(sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$files") files"
                name=tree-$set
                log "$col: generating"
                "$GEN_TREE" "$DATA/src/$name" --files "$files" >/dev/null 2>&1
                ;;
            *) die "unknown workload $w (model, tree)" ;;
        esac
        COLS+=("$col")
        SIZE[$col|source]=$(bytes "$DATA/src/$name")
        SIZE[$col|files]=$(find "$DATA/src/$name" -type f | wc -l)
        run_workload "$col" "$w" "$name"
        rm -f "$DATA/$name.sha256"
    done
done
rm -f "$DATA/time.out" "$DATA/step.log"
[[ $KEEP == 1 ]] || rmdir "$DATA" 2>/dev/null || true

row() { printf '| %s |' "$1"; shift; printf ' %s |' "$@"; printf '\n'; }
header() {
    row "$1" "${COLS[@]}"
    printf '|---|'; for _ in "${COLS[@]}"; do printf -- '---:|'; done; printf '\n'
}
echo "Peak RSS (MB), $("$CAIRN" --version)"
echo
header step
for s in "${STEPS[@]}"; do
    vals=(); for c in "${COLS[@]}"; do vals+=("${RSS[$c|$s]}"); done
    row "$s" "${vals[@]}"
done
echo
header "data"
vals=(); for c in "${COLS[@]}"; do vals+=("${SIZE[$c|files]}"); done; row files "${vals[@]}"
vals=(); for c in "${COLS[@]}"; do vals+=("$(mb "${SIZE[$c|source]}")"); done; row "source MB" "${vals[@]}"
vals=(); for c in "${COLS[@]}"; do vals+=("$(mb "${SIZE[$c|repo]}")"); done; row "repository MB" "${vals[@]}"
