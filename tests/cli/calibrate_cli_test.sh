#!/usr/bin/env bash
# End-to-end checks of `udc calibrate` on the shipped calibration data (both formats), run
# from the repository root as the README shows, and of its errors.
set -euo pipefail
udc=$(realpath "$1")
root=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"

"$udc" calibrate tests/data/calibration/vela/vela_perf.json --json "$work/cal.json" >"$work/cal.txt"
grep -q "^all .* 128 " "$work/cal.txt"
grep -q '"summary"' "$work/cal.json"
# One layer, with its blocks and report.
"$udc" calibrate tests/data/calibration/vela/vela_perf.json --layer fc_128_10_w8 --details \
  >"$work/one.txt"
test "$(grep -c '^fc_128_10_w8  *ethos' "$work/one.txt")" = 8
grep -q "fully_connected ofm 1x1x10 block" "$work/one.txt"
# A parameter changes every configuration: a slow decoder makes the dense FC slower.
"$udc" calibrate tests/data/calibration/vela/vela_perf.json --layer fc_512_512_w8 \
  --set npu.decoder_symbols_per_cycle=1 >"$work/slow.txt"
fast=$(awk '/Sram_Only/ && /^fc_512/ {print $(NF-3)}' "$work/cal.txt")
slow=$(awk '/Sram_Only/ && /^fc_512/ {print $(NF-3)}' "$work/slow.txt")
test -n "$fast" && test -n "$slow" && test "$slow" -gt "$fast"
# Whole networks.
"$udc" calibrate tests/data/calibration/vela_wholenet/results.json >"$work/nets.txt"
grep -q "^all .* 15 " "$work/nets.txt"

# Errors name the file and what is wrong, and exit non-zero.
echo '{"specs": [' >"$work/bad.json"
if "$udc" calibrate "$work/bad.json" 2>"$work/err.txt"; then exit 1; fi
grep -q "bad.json: malformed JSON" "$work/err.txt"
echo '{"specs": [{"name": "x", "kind": "conv"}], "results": []}' >"$work/missing.json"
if "$udc" calibrate "$work/missing.json" 2>"$work/err.txt"; then exit 1; fi
grep -q "specs\[0\]: missing key 'cin'" "$work/err.txt"
echo "calibrate cli: ok"
