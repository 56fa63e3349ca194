#!/usr/bin/env bash
# End-to-end checks of `udc export` and `udc import` and of every model command taking a
# .tflite: the round trip gives the same .udcm bytes, run and verify give the same cycles
# and outputs on either file, and bad files are refused with a clear error and no output.
set -euo pipefail
udc=$1
root=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npu="$root/configs/npu/u55-128-deep-embedded.yaml"

"$udc" model --generate mobilenet --side 32 --bits 4 --sparsity 0.5 -o "$work/m.udcm" >/dev/null
"$udc" export "$work/m.udcm" -o "$work/m.tflite" >"$work/out.txt"
grep -q "vela" "$work/out.txt"
"$udc" import "$work/m.tflite" -o "$work/back.udcm" >"$work/out.txt"
grep -q "block4_add .* add" "$work/out.txt"
cmp "$work/m.udcm" "$work/back.udcm"

# The same cycles and the same output bytes from either file.
head -c 3072 /dev/urandom >"$work/in.bin"
"$udc" run "$work/m.udcm" --npu "$npu" --input "$work/in.bin" --outputs "$work/a" >"$work/a.txt"
"$udc" run "$work/m.tflite" --npu "$npu" --input "$work/in.bin" --outputs "$work/b" >"$work/b.txt"
test "$(grep '^total:' "$work/a.txt")" = "$(grep '^total:' "$work/b.txt")"
cmp "$work/a/classifier.bin" "$work/b/classifier.bin"
"$udc" verify "$work/m.tflite" --inputs 2 --npu "$npu" >"$work/out.txt"
grep -q "all equal to the reference" "$work/out.txt"
"$udc" compile "$work/m.tflite" --npu "$npu" >"$work/out.txt"
grep -q "activation arena" "$work/out.txt"
"$udc" model "$work/m.tflite" >"$work/out.txt"
grep -q "classifier" "$work/out.txt"

# Refusals: a truncated file, a file of neither kind; nothing written in either case.
head -c 1000 "$work/m.tflite" >"$work/cut.tflite"
if "$udc" import "$work/cut.tflite" -o "$work/cut.udcm" 2>"$work/err.txt"; then exit 1; fi
grep -q "cut.tflite: corrupt TFLite flatbuffer" "$work/err.txt"
test ! -e "$work/cut.udcm"
echo "not a model" >"$work/junk.bin"
if "$udc" run "$work/junk.bin" 2>"$work/err.txt"; then exit 1; fi
grep -q "junk.bin: neither a .udcm model" "$work/err.txt"
echo "tflite cli: ok"
