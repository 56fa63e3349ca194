#!/usr/bin/env bash
# Data-parallel `udc train` on 2 local ranks (loopback, torchrun's variables):
# - its epochs follow the 1-process run of the same global batch (the first epochs' losses
#   agree to float precision) and rank 0 alone logs and writes; a tiny search on 2 ranks
#   derives the architecture one process derives (started with `udc launch`);
# - a run resumes from a checkpoint written with another number of ranks (1 -> 2, 2 -> 1);
# - a rank killed with SIGKILL ends the other with an error naming it, not a hang;
# - the parts of a grid of seeds (--shard, also over mpirun) gather in one seeds.json;
# - a malformed rendezvous is an error naming the variable.
# Usage: data_parallel_cli_test.sh UDC ROOT
set -euo pipefail
udc=$1
root=$(realpath "$2")
work=$(mktemp -d)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "error: /usr/share/datasets/fashion-mnist missing; ./setup.sh installs dataset-fashion-mnist" >&2
  exit 1
fi

# epochs WARMUP: a tiny training config with that many float epochs.
config() {
  cat >"$work/train-$1.yaml" <<YAML
model:
  name: tiny
  defaults: {bits: 4, sparsity: 0.5}
  layers:
    - {op: conv, out: 8, stride: 2}
    - {op: inverted_residual, out: 8, expansion: 2}
    - {op: global_avg_pool}
    - {op: fc, bits: 8}
data: {train_subset: 1024, test_subset: 200, augment: {crop_padding: 2, flip: true}}
train:
  batch_size: 64
  warmup: {epochs: $1}
  compress: {epochs: 2}
  finetune: {epochs: 1}
  prune_interval: 3
  holdout_fraction: 0.1
  threads: 1
npu: $root/configs/npu/u55-128-deep-embedded.yaml
verify_images: 6
YAML
}
config 1
config 40

port=$((20000 + RANDOM % 20000))
# start_rank RANK WORLD CONFIG OUT LOG: one rank in the background; its pid in $!.
start_rank() {
  RANK=$1 WORLD_SIZE=$2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port UDC_RANK_TIMEOUT=120 \
    "$udc" train --config "$work/$3" -o "$work/$4" >"$work/$5" 2>&1 &
  pids+=($!)
}
# wait_for FILE PID: until FILE exists (or PID ends); fails after 2 minutes.
wait_for() {
  for _ in $(seq 1200); do
    [ -e "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: $1 never appeared" >&2
  exit 1
}
fail() {
  echo "FAIL: $1" >&2
  shift
  for log in "$@"; do tail -5 "$work/$log" >&2; done
  exit 1
}
first_loss() { grep -m1 '^epoch 1/' "$work/$1" | sed 's/.*: loss \([0-9.]*\),.*/\1/'; }

# 1. One process against two ranks.
"$udc" train --config "$work/train-1.yaml" -o "$work/one" >"$work/one.log" 2>&1
start_rank 1 2 train-1.yaml two two.1.log
rank1=$!
start_rank 0 2 train-1.yaml two two.0.log
rank0=$!
wait "$rank0" || fail "rank 0 of 2 failed" two.0.log two.1.log
wait "$rank1" || fail "rank 1 of 2 failed" two.0.log two.1.log
[ -f "$work/two/model.udcm" ] || fail "2 ranks wrote no model.udcm" two.0.log
grep -q "data-parallel on 2 ranks" "$work/two.0.log" || fail "rank 0 does not say it runs on 2 ranks" two.0.log
if grep -q '^epoch\|wrote' "$work/two.1.log"; then fail "rank 1 logs or writes" two.1.log; fi
one_loss=$(first_loss one.log)
two_loss=$(first_loss two.0.log)
awk -v a="$one_loss" -v b="$two_loss" 'BEGIN { d = a - b; exit !(d < 0.0005 && d > -0.0005) }' ||
  fail "first epoch's loss: $one_loss on one process, $two_loss on 2 ranks" one.log two.0.log
echo "2 ranks follow one process: first epoch loss $one_loss / $two_loss"

# 1b. The same for a tiny search: 2 ranks derive what one process derives.
cat >"$work/search.yaml" <<YAML
name: tiny
input: [28, 28, 1]
classes: 10
space:
  bits: [2, 4, 8]
  sparsity: [0.0, 0.5, 0.9]
  blocks:
    - {name: stem, ops: [conv], widths: [4, 8], stride: 2}
    - {name: b1, ops: [conv, separable, skip], widths: [4, 8]}
    - {name: b2, ops: [conv, separable, ir2], widths: [8, 16], stride: 2}
budgets: {weight_bytes: 400, flash_bytes: 1000, sram_bytes: 4000, cycles: 20000}
data: {set: fashion-mnist, train_subset: 640, test_subset: 128}
search: {batch_size: 64, warmup: {epochs: 1}, search: {epochs: 3}, max_steps_per_epoch: 5,
         prune_interval: 3, flash_refresh_steps: 2, arch_lr: 0.05, lagrange_rate: 1.0,
         threads: 1, derivation: {samples: 4, holdout_fraction: 0.2}}
finetune: {batch_size: 64, warmup: {epochs: 1}, compress: {epochs: 1}, finetune: {epochs: 1},
           max_steps_per_epoch: 5, prune_interval: 2, holdout_fraction: 0.2, threads: 1}
npu: $root/configs/npu/u55-128-deep-embedded.yaml
verify_images: 6
YAML
"$udc" search --config "$work/search.yaml" -o "$work/search-one" >"$work/search-one.log" 2>&1 ||
  fail "the 1-process search failed" search-one.log
# (udc launch: the 2 local ranks started by udc itself.)
"$udc" launch -n 2 search --config "$work/search.yaml" -o "$work/search-two" \
  >"$work/search-two.0.log" 2>&1 || fail "the 2-rank search failed" search-two.0.log
derived() { sed -n 's/^  "derived": "\(.*\)",$/\1/p' "$work/$1/derivation.json"; }
[ -n "$(derived search-one)" ] || fail "no derived architecture in search-one/derivation.json" search-one.log
[ "$(derived search-one)" = "$(derived search-two)" ] ||
  fail "2 ranks derive $(derived search-two), one process $(derived search-one)" search-one.log search-two.0.log
echo "2-rank search derives what one process does: $(derived search-one)"

# 2. Resumed with another number of ranks: 2 -> 1 and 1 -> 2.
start_rank 1 2 train-40.yaml two-to-one killed.1.log
rank1=$!
start_rank 0 2 train-40.yaml two-to-one killed.0.log
rank0=$!
wait_for "$work/two-to-one/checkpoint.pt" "$rank0"
kill -9 "$rank0" "$rank1" 2>/dev/null || true
wait "$rank0" "$rank1" 2>/dev/null || true
sed -i 's/warmup: {epochs: 40}/warmup: {epochs: 2}/' "$work/train-40.yaml"
"$udc" train --config "$work/train-40.yaml" -o "$work/two-to-one" >"$work/resumed-one.log" 2>&1 ||
  fail "one process cannot resume the 2 ranks' checkpoint" resumed-one.log
grep -q "resuming from" "$work/resumed-one.log" || fail "2 -> 1 did not resume" resumed-one.log

sed -i 's/warmup: {epochs: 2}/warmup: {epochs: 40}/' "$work/train-40.yaml"
"$udc" train --config "$work/train-40.yaml" -o "$work/one-to-two" >"$work/killed-one.log" 2>&1 &
single=$!
pids+=($single)
wait_for "$work/one-to-two/checkpoint.pt" "$single"
kill -9 "$single" 2>/dev/null || true
wait "$single" 2>/dev/null || true
sed -i 's/warmup: {epochs: 40}/warmup: {epochs: 2}/' "$work/train-40.yaml"
port=$((port + 1))
start_rank 1 2 train-40.yaml one-to-two resumed.1.log
rank1=$!
start_rank 0 2 train-40.yaml one-to-two resumed.0.log
rank0=$!
wait "$rank0" || fail "2 ranks cannot resume one process's checkpoint" resumed.0.log resumed.1.log
wait "$rank1" || fail "rank 1 failed resuming" resumed.1.log
grep -q "resuming from" "$work/resumed.0.log" || fail "1 -> 2 did not resume" resumed.0.log
echo "resumed across 2 -> 1 and 1 -> 2 ranks"

# 3. A killed rank ends the other with an error naming it, whichever it is.
sed -i 's/warmup: {epochs: 2}/warmup: {epochs: 40}/' "$work/train-40.yaml"
for victim in 1 0; do
  port=$((port + 1))
  rm -rf "$work/dies"
  start_rank 1 2 train-40.yaml dies dies.1.log
  rank1=$!
  start_rank 0 2 train-40.yaml dies dies.0.log
  rank0=$!
  wait_for "$work/dies/checkpoint.pt" "$rank0"
  if [ "$victim" = 1 ]; then killed=$rank1 survivor=$rank0 log=dies.0.log; else killed=$rank0 survivor=$rank1 log=dies.1.log; fi
  kill -9 "$killed"
  start=$(date +%s)
  status=0
  wait "$survivor" || status=$?
  [ "$status" != 0 ] || fail "the survivor of rank $victim's death exited 0" "$log"
  [ $(($(date +%s) - start)) -lt 60 ] || fail "the survivor took a minute to stop" "$log"
  grep -q "rank $victim of 2 (.*pid.*) .*\(stopped\|is gone\)" "$work/$log" ||
    fail "the survivor's error does not name rank $victim" "$log"
  echo "rank $victim killed: $(grep -m1 -o "rank $victim of 2 ([^)]*) [a-z ]*" "$work/$log")"
done

# 4. A grid split into parts: seeds 1-3 in two parts at once into one folder, then over
#    mpirun; seeds.json gathers every part's runs.
sed -i 's/warmup: {epochs: 40}/warmup: {epochs: 1}/' "$work/train-40.yaml"
for part in 0/2 1/2; do
  "$udc" train --config "$work/train-40.yaml" -o "$work/grid" --seeds 1,2,3 --shard "$part" \
    >"$work/grid-${part%/*}.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]: -2}"; do wait "$pid" || fail "a part of the grid failed" grid-0.log grid-1.log; done
runs=$(grep -c '"seed":' "$work/grid/seeds.json")
[ "$runs" = 3 ] || fail "seeds.json of 2 parts holds $runs runs, not 3" grid-0.log grid-1.log
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 \
  mpirun --oversubscribe -np 2 "$udc" train --config "$work/train-40.yaml" -o "$work/mpi-grid" \
  --seeds 4,5 --shard mpi >"$work/mpi-grid.log" 2>&1 || fail "the grid over mpirun failed" mpi-grid.log
runs=$(grep -c '"seed":' "$work/mpi-grid/seeds.json")
[ "$runs" = 2 ] || fail "seeds.json of 2 MPI ranks holds $runs runs, not 2" mpi-grid.log
echo "grid parts: 3 seeds in 2 parts, 2 seeds over 2 MPI ranks, gathered in seeds.json"

# 5. udc launch passes on a failure: both ranks of a missing config fail.
status=0
"$udc" launch -n 2 train --config "$work/missing.yaml" -o "$work/none" >"$work/launch.log" 2>&1 ||
  status=$?
[ "$status" != 0 ] && grep -q "rank 1 of 2 exited with status" "$work/launch.log" ||
  fail "udc launch did not report the failing ranks" launch.log

# 6. A rendezvous without rank 0's address.
status=0
RANK=0 WORLD_SIZE=2 MASTER_PORT=$port "$udc" train --config "$work/train-1.yaml" -o "$work/bad" \
  >"$work/bad.log" 2>&1 || status=$?
[ "$status" != 0 ] && grep -q "MASTER_ADDR" "$work/bad.log" || fail "no error naming MASTER_ADDR" bad.log
echo "data-parallel CLI: ok"
