#!/bin/bash
# Manifest v2 (repository version 4) vs v1 (same binary, config set to version 3) vs restic on gen_tree 30k.
# usage: benches/manifest2.sh CAIRN_BIN GEN_TREE_BIN WORKDIR   (docs/BENCHMARKS.md, "Metadata that deduplicates: manifest version 2")
# manifest v2 vs v1 (same binary, repository version 4 vs 3) vs restic, on gen_tree 30k.
set -e
BIN=$1; GEN=$2; B=$3; export RESTIC_PASSWORD=x
mkdir -p $B; [ -d $B/src ] || $GEN $B/src >/dev/null
sz() { du -sb "$@" | awk '{s+=$1} END {print s}'; }
t() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
for tool in v2 v1 restic; do
  R=$B/repo-$tool W=$B/work-$tool; rm -rf $R $W; cp -a $B/src $W
  if [ $tool = restic ]; then restic -q -r $R init >/dev/null; s() { (cd $B && restic -q -r $R backup work-restic); }
  else $BIN --quiet --repo $R init >/dev/null
    if [ $tool = v1 ]; then for k in config config.backup; do sed -i 's/"version": 4/"version": 3/' $R/$k; done; fi
    s() { $BIN --quiet --repo $R snapshot $W --kind config --name svc; }; fi
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t1=$(t s); d1=$(sz $R); t2=$(t s); d2=$(sz $R); $GEN $W --change 2 --round 1 >/dev/null; t3=$(t s); d3=$(sz $R)
  rm -rf $B/out-$tool
  if [ $tool = restic ]; then tr=$(t restic -q -r $R restore latest --target $B/out-$tool)
  else tr=$(t $BIN --quiet --repo $R restore svc $B/out-$tool)
    tshow=$(t $BIN --repo $R show svc); tdiff=$(t $BIN --repo $R diff svc~1 svc)
    tpath=NA
  fi
  echo "$tool first=${d1}B t=${t1}s unchanged=+$((d2-d1))B t=${t2}s change2%=+$((d3-d2))B t=${t3}s restore=${tr}s show=${tshow}s diff=${tdiff}s restore_path=${tpath}s"
done
