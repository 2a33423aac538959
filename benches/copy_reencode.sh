#!/bin/bash
# docs/BENCHMARKS.md, "Re-encoding copy": copy plain local -> encrypted local vs snapshot into an empty encrypted repository, same run.
set -e
B=${CAIRN_BIN:-target/release/cairn}
G=${GEN_MODEL:-target/release/examples/gen_model}
W=${W:-/tmp/copybench}
rm -rf "$W"; mkdir -p "$W/m"
"$G" "$W/m/model.safetensors" --size 512M
export CAIRN_PASSWORD=bench CAIRN_KDF_MEMORY_KIB=64
sync
"$B" init --repo "$W/plain" >/dev/null
"$B" snapshot "$W/m" --kind model --name m --repo "$W/plain" >/dev/null
for i in 1 2; do
  "$B" init --encryption --repo "$W/enc-snap$i" >/dev/null
  "$B" init --encryption --repo "$W/enc-copy$i" >/dev/null
  s0=$(date +%s.%N); "$B" snapshot "$W/m" --kind model --name m --repo "$W/enc-snap$i" >/dev/null; s1=$(date +%s.%N)
  c0=$(date +%s.%N); "$B" copy --from "$W/plain" --to "$W/enc-copy$i" >/dev/null; c1=$(date +%s.%N)
  python3 -c "s=$s1-$s0; c=$c1-$c0; print(f'run $i: snapshot {s:.2f} s, copy {c:.2f} s, copy/snapshot {c/s:.2f}x')"
done
du -sh "$W"/enc-snap1 "$W"/enc-copy1
rm -rf "$W"
