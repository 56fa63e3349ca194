#!/usr/bin/env bash
# End-to-end checks of `udc codec`: round trip through files, stats, and clear
# errors with a non-zero exit on bad input. Usage: codec_cli_test.sh UDC DATA_DIR
set -u
udc=$1
data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then echo "ok: $name"; passes=$((passes + 1)); else echo "FAILED: $name"; failures=$((failures + 1)); fi
}

"$udc" codec encode "$data/gauss4_70_65536_s10.bin" "$work/a.mlw" >/dev/null
check "encode writes a stream" test -s "$work/a.mlw"
"$udc" codec decode "$work/a.mlw" "$work/a.bin" >/dev/null
check "decode restores the weights" cmp -s "$data/gauss4_70_65536_s10.bin" "$work/a.bin"
"$udc" codec decode "$data/gauss4_70_65536_s10.mlw" "$work/ref.npy" >/dev/null
check "decode writes .npy" test "$(head -c 6 "$work/ref.npy" | tail -c 5)" = "NUMPY"
"$udc" codec encode "$work/ref.npy" "$work/b.mlw" >/dev/null
check "npy input encodes like raw input" cmp -s "$work/a.mlw" "$work/b.mlw"
"$udc" codec stats "$data/runs_65536_s12.mlw" >"$work/stats.txt"
check "stats reports bits per weight" grep -q "bits per weight" "$work/stats.txt"
check "stats lists slices" grep -q "runs k=" "$work/stats.txt"

head -c 100 "$data/gauss8_50_65536_s7.mlw" >"$work/cut.mlw"
"$udc" codec decode "$work/cut.mlw" "$work/cut.bin" 2>"$work/err.txt"
status=$?
check "truncated stream exits non-zero" test "$status" -ne 0
check "error names the file" grep -q "cut.mlw" "$work/err.txt"
check "error names the bit offset" grep -q "bit [0-9]" "$work/err.txt"
check "no output file left behind" test ! -e "$work/cut.bin"
check "no temporary left behind" test -z "$(ls "$work" | grep tmp)"

# A decode is bounded by what the caller expects: 65,536 weights do not fit 1,000.
"$udc" codec decode --max-weights 1000 "$data/gauss4_70_65536_s10.mlw" "$work/big.npy" \
  2>"$work/err.txt"
check "a stream over --max-weights exits non-zero" test $? -ne 0
check "the error names the bound" grep -q "more than the allowed 1000 weights" "$work/err.txt"
check "no output past the bound" test ! -e "$work/big.npy"

"$udc" codec encode "$work/missing.bin" "$work/x.mlw" 2>"$work/err.txt"
check "missing input exits non-zero" test $? -ne 0
check "missing input is named" grep -q "missing.bin" "$work/err.txt"

printf 'NOTNUMPY' >"$work/bad.npy"
"$udc" codec encode "$work/bad.npy" "$work/x.mlw" 2>"$work/err.txt"
check "bad npy exits non-zero" test $? -ne 0
check "bad npy error says what was expected" grep -q "magic" "$work/err.txt"

echo "$passes passed, $failures failed"
test "$failures" -eq 0
