#!/usr/bin/env bash
# benches/peers.sh: cairn side by side with restic and borgbackup, on the same
# synthetic model files, in one run.
#
#   benches/peers.sh                       # SIZE=2G, cairn + restic + borg
#   SIZE=256M PEERS=restic benches/peers.sh
#   CAIRN=0 GEN_MODEL=/path/to/gen_model SIZE=256M benches/peers.sh   # peers only
#   S3=1 SIZE=1G benches/peers.sh          # on S3: cairn local, cairn S3, restic S3
#
# With S3=1 a SeaweedFS server (WEED, default .ci/venv/bin/weed, which
# .ci/run installs) is started on 127.0.0.1 (ports from WEED_BASE, default
# 28500), and the tools are cairn on a local disk, cairn on s3://, and
# restic on s3: (borg has no S3 backend); speedups are cairn-s3's. Repository
# sizes are those of the local repository only.
#
# Steps, each the same for every tool and timed with GNU `time -v`
# (init is done but not in the table):
#   1. init            2. snapshot v1         3. snapshot v1 again, unchanged
#   4. snapshot v2 (same path, 1 tensor in 8 perturbed, new mtime and inode)
#   (the backed-up dir holds model.safetensors and a small, newer config.json)
#   5. restore v2 into an empty dir, then `cmp` with v2 (fails loudly if different)
#   6. full read-back check (restic check --read-data, borg check --verify-data,
#      cairn check --read-data; "n/a" if cairn has no `check` yet)
# then the repository size (du -sb) after v1 + v2.
#
# Output: a markdown table on stdout, also written to $WORK/results.md; each
# command's output and `time -v` report are kept in $WORK/logs/.
#
# Environment:
#   SIZE       model file size, K/M/G suffixes (default 2G)
#   WORK       scratch dir (default <repo>/bench-data/peers, git-ignored)
#   PEERS      peer tools to run (default "restic borg")
#   CAIRN      1 (default) to build and run cairn, 0 to leave it out
#   CAIRN_BIN  cairn binary to use instead of building it
#   GEN_MODEL  gen_model binary to use instead of building the example
#   TENSORS_MB tensor size for gen_model (default 32, less below SIZE=256M)
#   KEEP_REPOS 1 to keep the repositories in $WORK/repos after the run
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SIZE=${SIZE:-2G}
WORK=${WORK:-$ROOT/bench-data/peers}
PEERS=${PEERS:-restic borg}
CAIRN=${CAIRN:-1}
KEEP_REPOS=${KEEP_REPOS:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf '[peers] %s\n' "$*" >&2; }
die() { printf '[peers] ERROR: %s\n' "$*" >&2; exit 1; }

S3=${S3:-0}
TOOLS=()
if [[ $S3 == 1 ]]; then
    PEERS=${PEERS/borg/}
    [[ $CAIRN == 1 ]] && TOOLS+=(cairn cairn-s3)
    for p in $PEERS; do
        case $p in
            restic) TOOLS+=(restic-s3) ;;
            *) die "unknown S3 peer '$p' (restic)" ;;
        esac
    done
else
    [[ $CAIRN == 1 ]] && TOOLS+=(cairn)
    for p in $PEERS; do
        case $p in
            restic | borg) TOOLS+=("$p") ;;
            *) die "unknown peer '$p' (restic, borg)" ;;
        esac
    done
fi
SUBJECT=cairn
[[ $S3 == 1 ]] && SUBJECT=cairn-s3
((${#TOOLS[@]} > 0)) || die "nothing to run (CAIRN=0 and PEERS empty)"

# ------------------------------------------------------------ install peers
need_install=0
[[ -x /usr/bin/time ]] || need_install=1
for p in $PEERS; do command -v "$p" >/dev/null 2>&1 || need_install=1; done
if ((need_install)); then
    log "installing restic, borgbackup and GNU time with apt-get"
    SUDO=""
    if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y restic borgbackup time
fi
gnu_time_out=$(/usr/bin/time -v true 2>&1) || true
[[ $gnu_time_out == *"Maximum resident set size"* ]] || die "/usr/bin/time is not GNU time"

# ------------------------------------------------------------------- build
if [[ $CAIRN == 1 && -z ${CAIRN_BIN:-} ]]; then
    log "building cairn (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
    CAIRN_BIN=$TARGET_DIR/release/cairn
fi
if [[ -z ${GEN_MODEL:-} ]]; then
    log "building gen_model (cargo build --release --example gen_model)"
    (cd "$ROOT" && cargo build --release --example gen_model)
    GEN_MODEL=$TARGET_DIR/release/examples/gen_model
fi
[[ -x $GEN_MODEL ]] || die "no gen_model at $GEN_MODEL"
[[ $CAIRN != 1 || -x $CAIRN_BIN ]] || die "no cairn at $CAIRN_BIN"

# ------------------------------------------------------------- S3 server
if [[ $S3 == 1 ]]; then
    WEED=${WEED:-$ROOT/.ci/venv/bin/weed}
    [[ -x $WEED ]] || die "no SeaweedFS at $WEED (run .ci/run once, or set WEED)"
    WEED_BASE=${WEED_BASE:-28500}
    WEED_DIR=$(mktemp -d)
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
    "$WEED" mini -dir="$WEED_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -admin.ui=false -webdav=false -debug.port=0 -s3.debug.port=0 -bucket=bench \
        -master.port=$WEED_BASE -volume.port=$((WEED_BASE + 2)) -filer.port=$((WEED_BASE + 4)) \
        -s3.port=$((WEED_BASE + 6)) -admin.port=$((WEED_BASE + 8)) \
        -s3.port.iceberg=$((WEED_BASE + 10)) -s3.port.lance=$((WEED_BASE + 12)) \
        >"$WEED_DIR/weed.log" 2>&1 &
    WEED_PID=$!
    trap 'kill $WEED_PID 2>/dev/null; wait $WEED_PID 2>/dev/null; rm -rf "$WEED_DIR"' EXIT
    for _ in $(seq 1 600); do
        grep -q "Press Ctrl+C" "$WEED_DIR/weed.log" 2>/dev/null && break
        kill -0 $WEED_PID 2>/dev/null || { cat "$WEED_DIR/weed.log" >&2; die "SeaweedFS did not start"; }
        sleep 0.1
    done
    S3_ENDPOINT=http://127.0.0.1:$((WEED_BASE + 6))
    export AWS_ENDPOINT_URL=$S3_ENDPOINT
    log "SeaweedFS S3 at $S3_ENDPOINT (data in $WEED_DIR)"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ layout
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DATA=$WORK/data
LOGS=$WORK/logs
rm -rf "$LOGS" "$WORK/repos" "$WORK/src" "$WORK/restore" "$WORK/cache"
mkdir -p "$DATA/v1" "$DATA/v2" "$LOGS" "$WORK/repos" "$WORK/cache"
V1=$DATA/v1/model.safetensors
V2=$DATA/v2/model.safetensors
SRC=$WORK/src # the backed-up dir: always SRC/model.safetensors
RESTORE=$WORK/restore

# 32 MiB tensors, smaller for small sizes so that there are at least 8
# (and so 1 in 8 of them changes in v2)
size_num=${SIZE%[bB]}
SIZE_BYTES=$(numfmt --from=iec "${size_num%i}") || die "bad SIZE '$SIZE'"
TENSORS_MB=${TENSORS_MB:-$(awk -v b="$SIZE_BYTES" 'BEGIN { m = b / 1048576 / 8; m = m > 32 ? 32 : m; printf "%g", m < 0.0625 ? 0.0625 : m }')}
log "generating $SIZE model files in $DATA ($TENSORS_MB MiB tensors)"
"$GEN_MODEL" "$V1" --size "$SIZE" --seed 1 --tensors-mb "$TENSORS_MB"
"$GEN_MODEL" "$V2" --size "$SIZE" --seed 1 --tensors-mb "$TENSORS_MB" --perturb 8
cmp -s "$V1" "$V2" && die "v1 and v2 are identical"
FILE_BYTES=$(stat -c %s "$V1")
cat "$V1" "$V2" >/dev/null # warm the page cache

# ------------------------------------------------------------------ timing
declare -A WALL RSS CPU SERVER_CPU REPO_BYTES

# server_cpu: CPU seconds (user + system, its children included) the S3
# server has used so far; empty without one.
server_cpu() {
    [[ -n ${WEED_PID:-} ]] || return 0
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15 + $16 + $17) / hz }' "/proc/$WEED_PID/stat"
}

# timed [-C DIR] TOOL STEP CMD...: run CMD (in DIR) under GNU time, record wall
# seconds and peak RSS, fail loudly (with the log) if it fails.
timed() {
    local cwd=.
    if [[ $1 == -C ]]; then
        cwd=$2
        shift 2
    fi
    local tool=$1 step=$2
    shift 2
    local out=$LOGS/$tool.$step.log tv=$LOGS/$tool.$step.time
    sync
    log "$tool: $step: $*"
    local server_before
    server_before=$(server_cpu)
    if ! (cd "$cwd" && exec /usr/bin/time -v -o "$tv" "$@" >"$out" 2>&1); then
        tail -n 30 "$out" >&2 || true
        die "$tool: $step failed (exit status above; log in $out)"
    fi
    WALL[$tool,$step]=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, t, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + t[i]
        printf "%.2f", s }' "$tv")
    RSS[$tool,$step]=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$tv")
    CPU[$tool,$step]=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tv")
    [[ -n $server_before ]] && SERVER_CPU[$tool,$step]=$(awk -v a="$server_before" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
    log "$tool: $step: ${WALL[$tool,$step]} s, peak RSS ${RSS[$tool,$step]} MiB"
}

# put_src FILE MTIME: atomically (re)place SRC/model.safetensors by a copy of
# FILE with the given mtime, so every tool sees a new inode, size-equal file
# with a different mtime at the same path. A small config.json is then
# (re)written, as in a real model dir: it must be the newest file, because borg
# never puts the file with the newest ctime of a run into its files cache (it
# would re-read a lone model file on every run, however unchanged).
put_src() {
    mkdir -p "$SRC"
    cp "$1" "$SRC/.model.tmp"
    touch -d "$2" "$SRC/.model.tmp"
    mv -f "$SRC/.model.tmp" "$SRC/model.safetensors"
    sleep 1 # past the filesystem's timestamp granularity
    printf '{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "torch_dtype": "%s"}\n' \
        bfloat16 >"$SRC/config.json"
    sync
    cat "$SRC/model.safetensors" >/dev/null
}

# verify_restore TOOL DIR: exactly one model.safetensors under DIR, equal to v2.
verify_restore() {
    local found
    mapfile -t found < <(find "$2" -type f -name model.safetensors)
    ((${#found[@]} == 1)) || die "$1: restore produced ${#found[@]} model.safetensors files under $2"
    cmp "$V2" "${found[0]}" || die "$1: RESTORED FILE DIFFERS FROM v2 (${found[0]})"
    log "$1: restored file is identical to v2"
}

# ------------------------------------------------------------------- tools
# cairn_steps TOOL REPO: the steps for cairn at REPO (a path or an s3:// URL).
cairn_steps() {
    local tool=$1 repo=$2
    local c=("$CAIRN_BIN" --repo "$repo")
    export CAIRN_CACHE_DIR=$WORK/cache/$tool
    "${c[@]}" init >"$LOGS/$tool.init.log" 2>&1 || { cat "$LOGS/$tool.init.log" >&2; die "$tool init failed"; }
    timed "$tool" snap1 "${c[@]}" snapshot "$SRC" --kind model --name bench --quiet
    timed "$tool" snap1again "${c[@]}" snapshot "$SRC" --kind model --name bench --quiet
    put_src "$V2" "2024-01-02 00:00:00"
    timed "$tool" snap2 "${c[@]}" snapshot "$SRC" --kind model --name bench --quiet
    [[ -d $repo ]] && REPO_BYTES[$tool]=$(du -sb "$repo" | cut -f1)
    timed "$tool" restore "${c[@]}" restore bench "$RESTORE"
    verify_restore "$tool" "$RESTORE"
    timed "$tool" check "${c[@]}" check --read-data
}

run_cairn() { cairn_steps cairn "$WORK/repos/cairn"; }
run_cairn-s3() { cairn_steps cairn-s3 "s3://bench/cairn-$$"; }

# restic_steps TOOL REPO: the steps for restic at REPO.
restic_steps() {
    local tool=$1
    export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/cache/$tool
    local r=(restic -r "$2")
    "${r[@]}" init >"$LOGS/$tool.init.log" 2>&1 || { cat "$LOGS/$tool.init.log" >&2; die "$tool init failed"; }
    timed "$tool" snap1 "${r[@]}" backup --compression auto "$SRC"
    timed "$tool" snap1again "${r[@]}" backup --compression auto "$SRC"
    put_src "$V2" "2024-01-02 00:00:00"
    timed "$tool" snap2 "${r[@]}" backup --compression auto "$SRC"
    [[ -d $2 ]] && REPO_BYTES[$tool]=$(du -sb "$2" | cut -f1)
    timed "$tool" restore "${r[@]}" restore latest --target "$RESTORE"
    verify_restore "$tool" "$RESTORE"
    timed "$tool" check "${r[@]}" check --read-data
}

run_restic() { restic_steps restic "$WORK/repos/restic"; }
run_restic-s3() { restic_steps restic-s3 "s3:$S3_ENDPOINT/bench/restic-$$"; }

run_borg() {
    local repo=$WORK/repos/borg
    export BORG_PASSPHRASE="" BORG_BASE_DIR=$WORK/cache/borg
    export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
    borg init -e none "$repo" >"$LOGS/borg.init.log" 2>&1 || { cat "$LOGS/borg.init.log" >&2; die "borg init failed"; }
    timed borg snap1 borg create --stats --list --compression zstd,3 "$repo::v1" "$SRC"
    timed borg snap1again borg create --stats --list --compression zstd,3 "$repo::v1-again" "$SRC"
    put_src "$V2" "2024-01-02 00:00:00"
    timed borg snap2 borg create --stats --list --compression zstd,3 "$repo::v2" "$SRC"
    REPO_BYTES[borg]=$(du -sb "$repo" | cut -f1)
    timed -C "$RESTORE" borg restore borg extract "$repo::v2"
    verify_restore borg "$RESTORE"
    timed borg check borg check --verify-data "$repo"
}

for tool in "${TOOLS[@]}"; do
    log "=== $tool ==="
    rm -rf "$SRC" "$RESTORE"
    mkdir -p "$RESTORE"
    put_src "$V1" "2024-01-01 00:00:00"
    "run_$tool"
    rm -rf "$RESTORE"
    ((KEEP_REPOS)) || rm -rf "$WORK/repos/$tool"
done
rm -rf "$SRC"

# ------------------------------------------------------------------- table
version() {
    case $1 in
        cairn-s3) echo "cairn on SeaweedFS $("$WEED" version 2>/dev/null | head -n1 | awk '{print $3}')" ;;
        restic-s3) echo "restic on S3" ;;
        cairn) "$CAIRN_BIN" --version 2>/dev/null | head -n1 || echo cairn ;;
        restic) restic version | awk '{print $1, $2}' ;;
        borg) borg --version ;;
    esac
}

fmt() { awk -v x="$1" -v f="$2" 'BEGIN { if (x == "n/a" || x == "") print "n/a"; else printf f, x }'; }
mbps() { awk -v w="$1" -v b="$FILE_BYTES" 'BEGIN { if (w == "n/a" || w == "") print "n/a"
    else if (w + 0 == 0) print "inf"; else printf "%.0f", b / 1048576 / w }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || b == "")
    print "n/a"; else if (b + 0 == 0) print "inf"; else printf "%.2fx", a / b }'; }

# tool_columns TITLE...: sets head and sep to a table's first column and,
# for each tool, one right-aligned column per TITLE.
tool_columns() {
    head="| step |"
    sep="|---|"
    local t c
    for t in "${TOOLS[@]}"; do
        for c in "$@"; do
            head+=" $t $c |"
            sep+="---:|"
        done
    done
}

PEER_TOOLS=()
for t in "${TOOLS[@]}"; do [[ $t == "$SUBJECT" ]] || PEER_TOOLS+=("$t"); done
SPEEDUP=()
[[ $CAIRN == 1 ]] && SPEEDUP=("${PEER_TOOLS[@]}")

STEPS=(snap1 snap1again snap2 restore check)
declare -A LABEL=(
    [snap1]="snapshot v1 (first)"
    [snap1again]="snapshot v1 again (unchanged)"
    [snap2]="snapshot v2 (1/8 tensors changed)"
    [restore]="restore v2 (+ cmp ok)"
    [check]="full read-back check"
)

{
    echo "## cairn vs peers: $(numfmt --to=iec-i --suffix=B "$FILE_BYTES") safetensors (bf16), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM," \
        "load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg);" \
        "versions: $(for t in "${TOOLS[@]}"; do printf '%s; ' "$(version "$t")"; done)"
    echo "File: $FILE_BYTES bytes; MiB/s = file size / wall time (for check too, though it reads both versions);" \
        "speedup = peer wall / cairn wall; size ratio = cairn / peer. Page cache warm."
    echo
    tool_columns "wall s" "MiB/s" "RSS MiB"
    for p in "${SPEEDUP[@]}"; do
        head+=" $SUBJECT speedup vs $p |"
        sep+="---:|"
    done
    echo "$head"
    echo "$sep"
    for s in "${STEPS[@]}"; do
        row="| ${LABEL[$s]} |"
        for t in "${TOOLS[@]}"; do
            row+=" $(fmt "${WALL[$t,$s]}" %.2f) | $(mbps "${WALL[$t,$s]}") | $(fmt "${RSS[$t,$s]}" %.0f) |"
        done
        for p in "${SPEEDUP[@]}"; do
            row+=" $(ratio "${WALL[$p,$s]}" "${WALL[$SUBJECT,$s]}") |"
        done
        echo "$row"
    done
    row="| repository size after v1+v2, MiB (ratio cairn/peer) |"
    for t in "${TOOLS[@]}"; do
        row+=" $(awk -v b="${REPO_BYTES[$t]:-}" 'BEGIN { if (b == "") print "n/a"; else printf "%.1f", b / 1048576 }') | | |"
    done
    for p in "${SPEEDUP[@]}"; do
        row+=" $(ratio "${REPO_BYTES[$SUBJECT]:-n/a}" "${REPO_BYTES[$p]:-n/a}") |"
    done
    echo "$row"
    if [[ $S3 == 1 ]]; then
        # Client and server share this machine's cores: where the CPU went.
        echo
        echo "CPU seconds (user + system) of each step: the tool's, and the S3 server's during it."
        echo
        tool_columns "CPU s" "server CPU s"
        echo "$head"
        echo "$sep"
        for s in "${STEPS[@]}"; do
            row="| ${LABEL[$s]} |"
            for t in "${TOOLS[@]}"; do
                row+=" $(fmt "${CPU[$t,$s]}" %.2f) | $(fmt "${SERVER_CPU[$t,$s]:-n/a}" %.2f) |"
            done
            echo "$row"
        done
    fi
} | tee "$WORK/results.md"
log "results written to $WORK/results.md (logs in $LOGS)"
