#!/usr/bin/env bash
# Runs a libFuzzer binary for a fixed time on a copy of a seed corpus; fails on any finding.
# usage: run_fuzz.sh <fuzz-binary> <seconds> <corpus-dir>
# Crash, leak and timeout inputs are written to $FUZZ_ARTIFACTS (default: the current directory).
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 <fuzz-binary> <seconds> <corpus-dir>" >&2
    exit 2
fi
bin=$1
seconds=$2
corpus=$3
here=$(cd "$(dirname "$0")" && pwd)
dict=$here/resp.dict
artifacts=${FUZZ_ARTIFACTS:-$PWD}

work=$(mktemp -d "${TMPDIR:-/tmp}/respite-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
# The seed corpus stays untouched: libFuzzer adds what it finds to the copy.
cp -R "$corpus"/. "$work/corpus"/

log=$work/fuzz.log
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -dict="$dict" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus" >"$log" 2>&1
status=$?

tail -n 25 "$log"
runs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")
echo "fuzz: ${runs:-0} runs in ${seconds}s of $(basename "$bin")"

# UBSan reports without aborting if built without -fno-sanitize-recover; catch them too.
if [ "$status" -eq 0 ] && grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)' "$log"; then
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "fuzz: FAILED (exit status $status); artifacts in $artifacts" >&2
    exit "$status"
fi
echo "fuzz: no findings"
