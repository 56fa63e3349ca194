#!/usr/bin/env bash
# End-to-end checks of `udc model`, `compile`, `run`, `verify` and `sweep` on generated
# models, and of their errors: corrupt models, impossible budgets, bad sweep files.
set -euo pipefail
udc=$1
root=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$udc" model --generate mobilenet --side 32 --bits 4 --sparsity 0.5 -o "$work/m.udcm" >"$work/gen.txt"
grep -q "total: .* MACs" "$work/gen.txt"
"$udc" model "$work/m.udcm" >"$work/summary.txt"
grep -q "block4_add .* add" "$work/summary.txt"

"$udc" compile "$work/m.udcm" --npu "$root/configs/npu/u55-128-deep-embedded.yaml" \
  -o "$work/m.json" >"$work/plan.txt"
grep -q "activation arena" "$work/plan.txt"
# The written stream runs under `udc sim` and gives the cycles `udc run` reports.
sim_cycles=$("$udc" sim "$work/m.json" --npu "$root/configs/npu/u55-128-deep-embedded.yaml" | sed -n 's/^total: \([0-9]*\) cycles.*/\1/p')
"$udc" run "$work/m.udcm" --npu "$root/configs/npu/u55-128-deep-embedded.yaml" \
  --json "$work/run.json" --trace "$work/trace.json" --outputs "$work/out" >"$work/run.txt"
run_cycles=$(sed -n 's/^total: \([0-9]*\) cycles.*/\1/p' "$work/run.txt")
test -n "$run_cycles"
test "$sim_cycles" = "$run_cycles"
grep -q "inferences/s" "$work/run.txt"
grep -q '"layers"' "$work/run.json"
grep -q '"traceEvents"' "$work/trace.json"
test "$(stat -c %s "$work/out/classifier.bin")" = 10

# Verify with random inputs and with a data folder; the run's own output is a valid input
# for nothing, so write a raw input file of the right size.
"$udc" verify "$work/m.udcm" --inputs 2 >"$work/verify.txt"
grep -q "all equal to the reference" "$work/verify.txt"
mkdir "$work/data"
head -c 3072 /dev/urandom >"$work/data/a.bin"
"$udc" verify "$work/m.udcm" --data "$work/data" --npu "$root/configs/npu/ethos-u65-512.yaml" >"$work/verify.txt"
grep -q "1 inputs" "$work/verify.txt"

# Sweep over a small grid, two processes.
cat >"$work/space.yaml" <<'YAML'
npu: PLACEHOLDER
parameters:
  npu.macs_per_cycle: [64, 256]
  system.offchip.bytes_per_cycle: [0.5, 2]
YAML
sed -i "s#PLACEHOLDER#$root/configs/npu/u55-128-deep-embedded.yaml#" "$work/space.yaml"
"$udc" sweep "$work/m.udcm" --space "$work/space.yaml" -j 2 --csv "$work/s.csv" --plot "$work/s.svg" >"$work/sweep.txt"
test "$(wc -l <"$work/s.csv")" = 5
grep -q "<svg" "$work/s.svg"
grep -q "Pareto front" "$work/sweep.txt"
# The largest, fastest configuration is on the front; hardware size is the area model's
# total: 256 MACs cost 192 x 53 um^2 more than 64 MACs, the rest being equal.
grep -q "^256,2,[0-9.e+-]*,[0-9.e+-]*,1,.*,1,$" "$work/s.csv"
area64=$(grep "^64,2," "$work/s.csv" | cut -d, -f4)
area256=$(grep "^256,2," "$work/s.csv" | cut -d, -f4)
awk -v a="$area64" -v b="$area256" 'BEGIN { d = b - a - 192 * 53e-6; exit !(d < 1e-4 && d > -1e-4) }'
grep -q "area \[mm^2\]" "$work/s.svg"
# Split over machines: 3 shards merged, and 2 MPI ranks, write the one-process CSV.
for i in 0 1 2; do
  "$udc" sweep "$work/m.udcm" --space "$work/space.yaml" -j 1 --shard "$i/3" \
    --shard-out "$work/part$i.txt" >/dev/null
done
"$udc" sweep "$work/m.udcm" --space "$work/space.yaml" --merge "$work"/part{0,1,2}.txt \
  --csv "$work/merged.csv" --plot "$work/merged.svg" >/dev/null
cmp "$work/s.csv" "$work/merged.csv"
if "$udc" sweep "$work/m.udcm" --space "$work/space.yaml" --merge "$work"/part{0,2}.txt \
  --csv "$work/x.csv" 2>"$work/err"; then exit 1; fi
grep -q "missing: 1 " "$work/err"
if "$udc" sweep "$work/m.udcm" --space "$work/space.yaml" --merge "$work"/part{0,1,1,2}.txt \
  --csv "$work/x.csv" 2>"$work/err"; then exit 1; fi
grep -q "part1.txt: line 2: point 1 again" "$work/err"
sed 's/\[64, 256\]/[64, 128]/' "$work/space.yaml" >"$work/other.yaml"
if "$udc" sweep "$work/m.udcm" --space "$work/other.yaml" --merge "$work"/part{0,1,2}.txt \
  --csv "$work/x.csv" 2>"$work/err"; then exit 1; fi
grep -q "part0.txt: line 1: a shard of another sweep" "$work/err"
if "$udc" sweep "$work/m.udcm" --space "$work/space.yaml" --shard 3/3 --shard-out "$work/x" \
  2>"$work/err"; then exit 1; fi
grep -q "shard '3/3': expected I/N" "$work/err"
# (OpenMPI's own allocations outlive MPI_Finalize: no leak check under the sanitizers.)
ASAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  mpirun --oversubscribe -np 2 \
  "$udc" sweep "$work/m.udcm" --space "$work/space.yaml" -j 1 --csv "$work/mpi.csv" \
  --plot "$work/mpi.svg" >"$work/mpi.txt" 2>&1 || { cat "$work/mpi.txt" >&2; exit 1; }
cmp "$work/s.csv" "$work/mpi.csv"

# Errors: a non-zero exit and a message naming the file, offset, key or resource.
head -c 100 "$work/m.udcm" >"$work/truncated.udcm"
if "$udc" run "$work/truncated.udcm" 2>"$work/err"; then exit 1; fi
grep -q "truncated.udcm: offset 8: header says" "$work/err"
cp "$work/m.udcm" "$work/corrupt.udcm"
printf '\x55' | dd of="$work/corrupt.udcm" bs=1 seek=500 conv=notrunc 2>/dev/null
if "$udc" verify "$work/corrupt.udcm" 2>"$work/err"; then exit 1; fi
grep -q "corrupt.udcm: offset 16: checksum mismatch" "$work/err"
if "$udc" run "$work/m.udcm" --set system.sram.size_bytes=8192 --json "$work/nofit.json" 2>"$work/err"; then exit 1; fi
grep -q "does not fit .*: sram: needs .* of SRAM" "$work/err"
test ! -e "$work/nofit.json"
printf 'parameters:\n  npu.macs: [1]\n' >"$work/bad.yaml"
if "$udc" sweep "$work/m.udcm" --space "$work/bad.yaml" 2>"$work/err"; then exit 1; fi
grep -q "bad.yaml:2: parameters.npu.macs: unknown NPU parameter" "$work/err"
printf 'parameters:\n  npu.cores: [1, 9]\n' >"$work/bad.yaml"
if "$udc" sweep "$work/m.udcm" --space "$work/bad.yaml" 2>"$work/err"; then exit 1; fi
grep -q "bad.yaml:2: parameters.npu.cores: expected an integer 1..4, got '9'" "$work/err"
printf 'parameters: {npu.cores: [1]}\nsizes: 3\n' >"$work/bad.yaml"
if "$udc" sweep "$work/m.udcm" --space "$work/bad.yaml" 2>"$work/err"; then exit 1; fi
grep -q "bad.yaml:2: sizes: unknown key (expected one of:" "$work/err"

# Super-resolution: an ESPCN-like x2 network over whole photographs in tiles, PSNR beside
# bicubic; the simulator's result is the interpreter's (bit-exact), its cycles are added.
"$udc" model --generate espcn --side 24 --bits 4 --sparsity 0.5 -o "$work/sr.udcm" >/dev/null
"$udc" eval "$work/sr.udcm" --data sr-photos --limit 1 >"$work/sr_interp.txt"
"$udc" eval "$work/sr.udcm" --data sr-photos --limit 1 --on simulator >"$work/sr_npu.txt"
grep -q "baboon.jpg .* dB (bicubic  24.97 dB)" "$work/sr_interp.txt"
test "$(grep baboon "$work/sr_interp.txt")" = "$(grep baboon "$work/sr_npu.txt")"
grep -q "NPU cycles per tile" "$work/sr_npu.txt"
if "$udc" eval "$work/m.udcm" --data sr-photos 2>"$work/err"; then exit 1; fi
grep -q "not a one-channel image and its upscale" "$work/err"
echo "model CLI: ok"
