#!/usr/bin/env bash
# Exact resume: `udc search` and `udc train` killed with SIGKILL at random moments (mid-
# epoch, mid-derivation, mid-fine-tune) and resumed, each several times, must write the
# same model.udcm, byte for byte, as an uninterrupted run, and leave no temporaries.
# Usage: resume_cli_test.sh UDC ROOT [SEED]. The kill delays are printed; SEED (default:
# random) replays them.
set -euo pipefail
udc=$1
root=$(realpath "$2")
seed=${3:-$RANDOM}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RANDOM=$seed
echo "resume test: seed $seed"

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "error: /usr/share/datasets/fashion-mnist missing; ./setup.sh installs dataset-fashion-mnist" >&2
  exit 1
fi

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
         derivation: {samples: 4, holdout_fraction: 0.2}}
finetune: {batch_size: 64, warmup: {epochs: 1}, compress: {epochs: 1}, finetune: {epochs: 1},
           max_steps_per_epoch: 5, prune_interval: 2, holdout_fraction: 0.2}
npu: $root/configs/npu/u55-128-deep-embedded.yaml
verify_images: 6
YAML

cat >"$work/train.yaml" <<YAML
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
  warmup: {epochs: 1}
  compress: {epochs: 2}
  finetune: {epochs: 1}
  prune_interval: 3
  flash_budget_bytes: 800
  holdout_fraction: 0.1
  distillation: {weight: 0.5}
npu: $root/configs/npu/u55-128-deep-embedded.yaml
verify_images: 10
YAML

# run_and_kill COMMAND CONFIG OUT TRIGGER DELAY_MS: runs, and kills it with SIGKILL
# DELAY_MS after TRIGGER (a file under OUT; empty: the start) appears.
run_and_kill() {
  local command=$1 config=$2 out=$3 trigger=$4 delay_ms=$5
  "$udc" "$command" --config "$work/$config" -o "$out" >>"$work/$command-killed.log" 2>&1 &
  local pid=$!
  if [ -n "$trigger" ]; then
    for _ in $(seq 6000); do
      [ -e "$out/$trigger" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
  fi
  sleep "$(awk "BEGIN { print $delay_ms / 1000 }")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# check COMMAND CONFIG TRIGGERS...: an uninterrupted run, then one killed once per trigger
# (a file the run writes as it goes, in order; "-": none), at a random delay after it,
# and resumed to the end each time.
check() {
  local command=$1 config=$2
  shift 2
  local start end full_ms
  start=$(date +%s%N)
  "$udc" "$command" --config "$work/$config" -o "$work/$command-full" >"$work/$command-full.log" 2>&1
  end=$(date +%s%N)
  full_ms=$(((end - start) / 1000000))
  local out=$work/$command-killed
  for trigger in "$@"; do
    local delay_ms
    if [ "$trigger" = - ]; then
      trigger=""
      delay_ms=$((RANDOM * full_ms / 32768))
    else
      delay_ms=$((RANDOM * 400 / 32768))
    fi
    echo "$command: killed ${delay_ms} ms after ${trigger:-the start} (uninterrupted: $full_ms ms)"
    run_and_kill "$command" "$config" "$out" "$trigger" "$delay_ms"
  done
  "$udc" "$command" --config "$work/$config" -o "$out" >>"$work/$command-killed.log" 2>&1
  if ! cmp -s "$work/$command-full/model.udcm" "$out/model.udcm"; then
    echo "FAIL: $command resumed after $# kills writes another model.udcm (seed $seed)" >&2
    tail -20 "$work/$command-killed.log" >&2
    exit 1
  fi
  if find "$out" -name '*.tmp.*' | grep -q .; then
    echo "FAIL: $command left temporaries: $(find "$out" -name '*.tmp.*')" >&2
    exit 1
  fi
  echo "$command: resumed model equals the uninterrupted one"
}

# In the search epochs, in the derivation or fine-tune, anywhere.
check search search.yaml search_checkpoint.pt derivation.json finetune/checkpoint.pt -
# In the compress epochs, anywhere.
check train train.yaml checkpoint.pt - -
echo "resume CLI: ok"
