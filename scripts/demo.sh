#!/usr/bin/env bash
# cairn's main job on a generated sample: snapshot a model file, fine-tune it
# (1/8 of the tensors change), snapshot again, restore the first version
# bit-identically, and show what deduplication saved.
# Everything lands in ./bench-data/demo (git-ignored); nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-256M}
WORK=${WORK:-bench-data/demo}

cargo build --release --quiet --bin cairn --example gen_model
# Where cargo put them: $CARGO_TARGET_DIR when set (relative to the repository root).
target=${CARGO_TARGET_DIR:-target}
cairn=$(realpath "$target/release/cairn")
gen=$(realpath "$target/release/examples/gen_model")
rm -rf "$WORK" && mkdir -p "$WORK/model"
WORK=$(realpath "$WORK")
export CAIRN_REPO="$WORK/repo"
# Sources are stored under their path as given: snapshot `model` from
# inside WORK, so the snapshot holds `model/model.safetensors`.
cd "$WORK"

echo "== generating a $SIZE bf16 safetensors model"
"$gen" "$WORK/model/model.safetensors" --size "$SIZE" --seed 1 --tensors-mb 8
"$gen" "$WORK/finetuned.safetensors" --size "$SIZE" --seed 1 --tensors-mb 8 --perturb 8
sha_v1=$(sha256sum "$WORK/model/model.safetensors" | cut -d' ' -f1)

echo "== cairn init"
"$cairn" init
echo "== first snapshot"
"$cairn" snapshot model --kind model --name demo --version v1 --tag milestone
echo "== same file again (stat cache: nothing is re-read)"
"$cairn" snapshot model --kind model --name demo
echo "== after fine-tuning 1/8 of the tensors"
mv "$WORK/finetuned.safetensors" "$WORK/model/model.safetensors"
"$cairn" snapshot model --kind model --name demo --version v2
echo "== history"
"$cairn" list
"$cairn" diff demo:v1 demo:v2
echo "== restore v1 and compare with its original SHA-256"
"$cairn" restore demo:v1 "$WORK/restored"
sha_back=$(sha256sum "$WORK/restored/model/model.safetensors" | cut -d' ' -f1)
[ "$sha_v1" = "$sha_back" ] || { echo "MISMATCH: $sha_v1 != $sha_back" >&2; exit 1; }
echo "restored v1 is bit-identical: $sha_back"
echo "== repository"
"$cairn" stats
