#!/usr/bin/env bash
# End-to-end checks of `udc sim`: runs the shipped example, writes JSON and trace files,
# and rejects bad configurations and streams with a message naming the problem.
set -euo pipefail
udc=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$udc" sim "$root/npu_sim/examples/small_network.json" --npu "$root/configs/npu/u55-128-deep-embedded.yaml" \
  --json "$work/report.json" --trace "$work/trace.json" --outputs "$work/out" >"$work/table.txt"
grep -q "total: .* cycles" "$work/table.txt"
grep -q '"total_cycles"' "$work/report.json"
grep -q '"traceEvents"' "$work/trace.json"
test "$(stat -c %s "$work/out/logits.bin")" = 10

# Timing-only mode reports the same total.
full=$(grep -o '"total_cycles": [0-9.]*' "$work/report.json")
"$udc" sim "$root/npu_sim/examples/small_network.json" --timing-only --json "$work/timing.json" >/dev/null
test "$full" = "$(grep -o '"total_cycles": [0-9.]*' "$work/timing.json")"

# More off-chip bandwidth never slows the job.
slow=$("$udc" sim "$root/npu_sim/examples/small_network.json" --timing-only | sed -n 's/^total: \([0-9]*\) cycles.*/\1/p')
fast=$("$udc" sim "$root/npu_sim/examples/small_network.json" --timing-only --set system.offchip.bytes_per_cycle=4 | sed -n 's/^total: \([0-9]*\) cycles.*/\1/p')
test "$fast" -le "$slow"

"$udc" sim --list-params >"$work/params.txt"
grep -q "npu.decoder_symbols_per_cycle" "$work/params.txt"

# Errors name the key or file and exit non-zero, writing nothing.
if "$udc" sim "$root/npu_sim/examples/small_network.json" --set npu.cores=9 2>"$work/err"; then exit 1; fi
grep -q "^udc: error: --set: npu.cores: expected an integer 1..4, got '9'" "$work/err"
printf 'npu:\n  mac_count: 3\n' >"$work/bad.yaml"
if "$udc" sim "$root/npu_sim/examples/small_network.json" --npu "$work/bad.yaml" 2>"$work/err"; then exit 1; fi
grep -q "bad.yaml:2: npu.mac_count: unknown key (expected one of: .*macs_per_cycle" "$work/err"
printf '{"format": "udc-command-stream", "version": 1, "commands": [{"op": "fft"}]}' >"$work/bad.json"
if "$udc" sim "$work/bad.json" --json "$work/bad_report.json" 2>"$work/err"; then exit 1; fi
grep -q "command 0: op: unknown operation" "$work/err"
test ! -e "$work/bad_report.json"
echo "sim CLI: ok"
