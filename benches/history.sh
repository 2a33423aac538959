#!/bin/bash
# A long history (#12): SNAPSHOTS snapshots of gen_tree's 30,000-file tree
# with 0.5 % of the files changing between them. Prints the catalog and
# repository size every 100 snapshots, then the time of `list`, `show`,
# `diff` and `restore --path` of a snapshot in the middle of the history.
# usage: benches/history.sh CAIRN_BIN GEN_TREE_BIN WORKDIR [SNAPSHOTS=1000]
# (docs/BENCHMARKS.md, "A long history")
set -euo pipefail
BIN=$1 GEN=$2 W=$3 N=${4:-1000}
mkdir -p "$W"; R=$W/repo S=$W/svc
rm -rf "$R" "$S" "$W/out"
"$GEN" "$S" >/dev/null
"$BIN" -q --repo "$R" init
size() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
start=$(date +%s)
for i in $(seq 1 "$N"); do
  [ "$i" -gt 1 ] && "$GEN" "$S" --change 0.5 --round "$i" >/dev/null
  "$BIN" -q --repo "$R" snapshot "$S" --kind config --name svc
  if (( i % 100 == 0 || i == N )); then
    echo "$i snapshots: catalog $(size "$R"/catalog.db*) B, repository $(size "$R") B, $(( $(date +%s) - start )) s"
  fi
done
mid=$(( N / 2 ))
path=$("$BIN" --repo "$R" ls "svc~$mid" --json | python3 -c '
import json, sys
files = [e["path"] for e in json.load(sys.stdin)["entries"] if e["type"] == "file"]
print(files[len(files) // 2])')
echo "list $(t "$BIN" --repo "$R" list) s"
echo "show svc~$mid $(t "$BIN" --repo "$R" show "svc~$mid") s"
echo "diff svc~$((mid + 1)) svc~$mid $(t "$BIN" --repo "$R" diff "svc~$((mid + 1))" "svc~$mid") s"
echo "restore svc~$mid --path $path $(t "$BIN" --repo "$R" restore "svc~$mid" "$W/out" --path "$path") s"
