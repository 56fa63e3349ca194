#!/usr/bin/env bash
# `udc train` and `udc eval` end to end on a Fashion-MNIST subset: progress, a kill in the
# middle and a resume from the checkpoint, the files written, `udc eval` reproducing the
# trainer's integer accuracy on the interpreter and the simulator, and the errors.
set -euo pipefail
udc=$1
root=$(realpath "$2")
work=$(mktemp -d)
trap 'kill %1 2>/dev/null || true; rm -rf "$work"' EXIT

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  # No silent skip: setup.sh installs the data set, so its absence is a failure.
  echo "error: /usr/share/datasets/fashion-mnist missing; ./setup.sh installs dataset-fashion-mnist" >&2
  exit 1
fi

cat >"$work/tiny.yaml" <<YAML
model:
  name: tiny
  defaults: {bits: 4, sparsity: 0.5}
  layers:
    - {op: conv, out: 8, stride: 2}
    - {op: inverted_residual, out: 8, expansion: 2}
    - {op: max_pool}
    - {op: global_avg_pool}
    - {op: fc, bits: 8}
data: {train_subset: 2048, test_subset: 300, augment: {crop_padding: 2, flip: true}}
train:
  batch_size: 64
  warmup: {epochs: 2}
  compress: {epochs: 2}
  finetune: {epochs: 1}
npu: $root/configs/npu/u55-128-deep-embedded.yaml
verify_images: 30
YAML

# Kill the run once its first epoch is reported (its checkpoint is written just before the
# report, so waiting for the checkpoint alone could kill it in between), then resume it.
"$udc" train --config "$work/tiny.yaml" -o "$work/run" >"$work/first.txt" 2>&1 &
for _ in $(seq 600); do
  grep -q "epoch 1/5 \[warmup\]: loss" "$work/first.txt" && break
  sleep 0.1
done
test -f "$work/run/checkpoint.pt"
kill -9 %1
wait %1 2>/dev/null || true
grep -q "epoch 1/5 \[warmup\]: loss" "$work/first.txt"
test ! -f "$work/run/model.udcm"

"$udc" train --config "$work/tiny.yaml" -o "$work/run" >"$work/second.txt"
grep -q "resuming from .*checkpoint.pt after epoch [1-4]/5" "$work/second.txt"
grep -q "epoch 5/5 \[finetune\]: .*weights [0-9]* B" "$work/second.txt"
grep -q "30 test images equal on LibTorch, interpreter and simulator" "$work/second.txt"
test -f "$work/run/model.udcm"
grep -q '"test_accuracy"' "$work/run/report.json"
"$udc" model "$work/run/model.udcm" | grep -q "tiny_add\|add"

# udc eval gives the trainer's accuracy (same integers), on both back ends.
expected=$(sed -n 's/^test \([0-9.]*\)% (integer model).*/\1/p' "$work/second.txt")
test -n "$expected"
"$udc" eval "$work/run/model.udcm" --limit 300 >"$work/eval.txt"
grep -q "top-1 accuracy $expected% " "$work/eval.txt"
"$udc" eval "$work/run/model.udcm" --limit 40 --on simulator >"$work/eval_sim.txt"
"$udc" eval "$work/run/model.udcm" --limit 40 >"$work/eval_ref.txt"
test "$(grep -o 'top-1 accuracy [0-9.]*%' "$work/eval_sim.txt")" = \
     "$(grep -o 'top-1 accuracy [0-9.]*%' "$work/eval_ref.txt")"
grep -q "NPU cycles per inference" "$work/eval_sim.txt"

# A flash budget the model cannot meet (every channel keeps a weight and a 10-byte scale
# record): non-zero exit with the numbers, and no model.udcm, only model.over-budget.udcm.
sed -e 's/^  finetune: {epochs: 1}/  finetune: {epochs: 1}\n  flash_budget_bytes: 64/' \
  -e 's/warmup: {epochs: 2}/warmup: {epochs: 1}/' -e 's/compress: {epochs: 2}/compress: {epochs: 1}/' \
  -e 's/train_subset: 2048/train_subset: 256/' "$work/tiny.yaml" >"$work/over.yaml"
grep -q "flash_budget_bytes: 64" "$work/over.yaml"
if "$udc" train --config "$work/over.yaml" -o "$work/over" >"$work/over.txt" 2>"$work/err.txt"; then exit 1; fi
grep -q "the trained model breaks its budgets; written as .*model.over-budget.udcm" "$work/err.txt"
grep -q "flash_bytes: [0-9]* B measured, budget 64 B" "$work/err.txt"
test ! -e "$work/over/model.udcm"
test -f "$work/over/model.over-budget.udcm"

# --npu and --set reach training: the report names the NPU as changed, and a bad key is an
# error naming it before any training.
if "$udc" train --config "$work/over.yaml" -o "$work/over_set" --set npu.macs_per_cycle=64 \
    >/dev/null 2>&1; then exit 1; fi
grep -q '"npu_config": ".*u55-128-deep-embedded.yaml, set npu.macs_per_cycle=64"' "$work/over_set/report.json"
# --list-params shows the training and NPU parameters --set takes, with the config's values.
"$udc" train --config "$work/tiny.yaml" --list-params --set train.seed=7 >"$work/params.txt"
grep -q "^train.seed  *7 " "$work/params.txt"
grep -q "^train.warmup.epochs  *2 " "$work/params.txt"
grep -q "^npu.macs_per_cycle  *128 " "$work/params.txt"
# --recipe trains with a search config's fine-tune recipe (fmnist-8k.yaml: 24 float epochs,
# distillation 0.5); the config's own budgets stay, --set applies after.
"$udc" train --config "$work/tiny.yaml" --recipe "$root/configs/search/fmnist-8k.yaml" \
  --set train.seed=9 --list-params >"$work/recipe.txt"
grep -q "^train.warmup.epochs  *24 " "$work/recipe.txt"
grep -q "^train.distillation.weight  *0.5 " "$work/recipe.txt"
grep -q "^train.seed  *9 " "$work/recipe.txt"
grep -q "^train.weight_budget_bytes  *0 " "$work/recipe.txt"
if "$udc" train --config "$work/over.yaml" -o "$work/nope" --set train.nope=1 2>"$work/err.txt"; then exit 1; fi
grep -q "^udc: error: --set: train.nope: unknown parameter" "$work/err.txt"
if "$udc" train --config "$work/over.yaml" -o "$work/nope" --set npu.nope=1 2>"$work/err.txt"; then exit 1; fi
grep -q "^udc: error: --set: npu.nope: unknown parameter" "$work/err.txt"
test ! -e "$work/nope/checkpoint.pt"

# Errors: bad config, missing data, wrong data for the model.
sed 's/bits: 4/bits: 12/' "$work/tiny.yaml" >"$work/bad.yaml"
if "$udc" train --config "$work/bad.yaml" -o "$work/bad" 2>"$work/err.txt"; then exit 1; fi
grep -q "bad.yaml:3: model.defaults.bits: expected an integer 2..8, got '12'" "$work/err.txt"
if "$udc" eval "$work/run/model.udcm" --dir "$work/nowhere" 2>"$work/err.txt"; then exit 1; fi
grep -q "nowhere: Fashion-MNIST directory not found" "$work/err.txt"
mkdir -p "$work/cifar"
head -c 30740 /dev/zero >"$work/cifar/test.bin"
if "$udc" eval "$work/run/model.udcm" --data cifar100 --dir "$work/cifar" 2>"$work/err.txt"; then exit 1; fi
grep -q "input input is 28x28x1, but cifar100/test images are 32x32x3" "$work/err.txt"

# udc search: an impossible budget stops before any training with the cheapest cost; a
# malformed space names the key.
sed -e 's/weight_bytes: 8192/weight_bytes: 16/' "$root/configs/search/fmnist-quick.yaml" \
  | sed -e "s#npu: ../npu#npu: $root/configs/npu#" -e "s#baselines: #baselines: $root/configs/search/#" \
  >"$work/impossible.yaml"
if "$udc" search --config "$work/impossible.yaml" -o "$work/impossible" 2>"$work/err.txt"; then exit 1; fi
grep -q "budget weight_bytes = 16 cannot be met: the cheapest architecture of the search space needs" "$work/err.txt"
if "$udc" search --config "$work/impossible.yaml" -o "$work/impossible" --set npu.nope=1 2>"$work/err.txt"; then exit 1; fi
grep -q "^udc: error: --set: npu.nope: unknown parameter" "$work/err.txt"
sed -e 's/ops: \[conv, separable, skip\]/ops: [conv, pool]/' "$work/impossible.yaml" >"$work/badspace.yaml"
if "$udc" search --config "$work/badspace.yaml" -o "$work/bad" 2>"$work/err.txt"; then exit 1; fi
grep -q "space.blocks\[2\].ops\[1\]: 'pool' is not an operator" "$work/err.txt"
# Co-design: --hardware picks one candidate of the space; out of range, or on a config
# without hardware choices beyond the one NPU, it is named; an area budget no candidate
# meets stops before training, listing why each was left out.
codesign="$root/configs/search/fmnist-codesign-quick.yaml"
if "$udc" search --config "$codesign" --hardware 24 -o "$work/cd" 2>"$work/err.txt"; then exit 1; fi
grep -q -- "--hardware 24: .*fmnist-codesign-quick.yaml has 24 hardware candidates (0 to 23)" "$work/err.txt"
sed -e 's/area_mm2: 0.22 /area_mm2: 0.05 /' -e "s#file: ../npu#file: $root/configs/npu#" \
  -e "s#npu: ../npu#npu: $root/configs/npu#" "$codesign" >"$work/tiny-area.yaml"
if "$udc" search --config "$work/tiny-area.yaml" -o "$work/cd" 2>"$work/err.txt"; then exit 1; fi
grep -q "no hardware candidate of .*tiny-area.yaml meets the budgets (area_mm2 = 0.05)" "$work/err.txt"
grep -q "mac_array=ethos-u55-32 npu.weight_decoders=1 system.sram.size_bytes=32768: 0.1091 mm^2" "$work/err.txt"
# --compare-hardware names a candidate that does not exist before anything runs, and does
# not go with --hardware.
if "$udc" search --config "$codesign" --compare-hardware 7,24 -o "$work/cmp" 2>"$work/err.txt"; then exit 1; fi
grep -q "fmnist-codesign-quick.yaml: hardware candidate 24 does not exist (0 to 23)" "$work/err.txt"
[[ ! -e "$work/cmp/hardware-7" ]]
if "$udc" search --config "$codesign" --compare-hardware 7 --hardware 7 -o "$work/cmp" 2>"$work/err.txt"; then exit 1; fi
grep -q "excludes" "$work/err.txt"
# `udc results` reads the kept seeds summaries (written by the seeds runner over several
# sessions): the 8 KiB search's mean over its three seeds as the summary recorded it, the
# front, the plot and CSV written whole; a folder without seeds.json is named, nothing written.
"$udc" results "$root/results/fmnist-8k-dnas" "$root/results/fmnist-8k-sequential-prune" \
  --plot "$work/p.svg" --csv "$work/p.csv" >"$work/results.txt"
grep -q '^| `fmnist-8k-dnas` | 1, 2, 3 | 91.55 ± 0.25 | 91.66, 91.26, 91.72 | .* | yes |$' "$work/results.txt"
grep -q '^| `fmnist-8k-sequential-prune` | 1, 2, 3 | 84.19 ± 1.54 |.* |  |$' "$work/results.txt"
grep -q "</svg>" "$work/p.svg"
[[ $(wc -l <"$work/p.csv") -eq 3 ]]
if "$udc" results "$root/results/fmnist-8k-dnas" "$work/none" --plot "$work/q.svg" 2>"$work/err.txt"; then exit 1; fi
grep -q "$work/none/seeds.json: no such file" "$work/err.txt"
[[ ! -e "$work/q.svg" ]]
echo "train CLI: ok"
