#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each) with
# AddressSanitizer. cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "== fuzz $target for ${SECONDS_EACH}s"
  cargo fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -print_final_stats=0
done
