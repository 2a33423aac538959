#!/bin/bash
# Metadata cost on the 30k gen_tree tree (docs/BENCHMARKS.md, "Metadata that deduplicates").
# usage: benches/meta_dedup.sh CAIRN_BIN GEN_TREE_BIN WORKDIR [HISTORY_ROUNDS]
# Prints repository bytes added by an unchanged re-snapshot and a 2 % change, for cairn and restic,
# then the catalog size along HISTORY_ROUNDS snapshots with 0.5 % change between them.
set -e
BIN=$1; GEN=$2; B=$3; N=${4:-0}; export RESTIC_PASSWORD=${RESTIC_PASSWORD:-bench}
mkdir -p $B; [ -d $B/src ] || $GEN $B/src >/dev/null
sz() { du -sb "$@" | awk '{s+=$1} END {print s}'; }
for tool in cairn restic; do
  R=$B/repo-$tool W=$B/work-$tool; rm -rf $R $W; cp -a $B/src $W
  if [ $tool = cairn ]; then $BIN --quiet --repo $R init >/dev/null; s() { $BIN --quiet --repo $R snapshot $W --kind config --name svc >/dev/null; }
  else restic -q -r $R init >/dev/null; s() { (cd $B && restic -q -r $R backup work-restic >/dev/null); }; fi
  s; d1=$(sz $R); s; d2=$(sz $R); $GEN $W --change 2 --round 1 >/dev/null; s; d3=$(sz $R)
  echo "$tool first=${d1}B unchanged=+$((d2-d1))B change2%=+$((d3-d2))B"
done
if [ "$N" -gt 0 ]; then
  R=$B/repo-hist W=$B/work-hist; rm -rf $R $W; cp -a $B/src $W
  $BIN --quiet --repo $R init >/dev/null
  for i in $(seq 1 $N); do
    [ $i = 1 ] || $GEN $W --change 0.5 --round $i >/dev/null 2>&1
    $BIN --quiet --repo $R snapshot $W --kind config --name svc >/dev/null
    [ $((i % 10)) = 0 ] || [ $i = 1 ] && echo "snapshots=$i catalog=$(sz $R/catalog.db*)B repo=$(sz $R)B"
  done
fi
