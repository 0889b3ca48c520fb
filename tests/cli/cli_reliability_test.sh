#!/usr/bin/env bash
# Bad input of every kind is refused before any work starts, with one line naming the file, key or
# token and exit status 2; nothing crashes, hangs, allocates without bound or finishes with a NaN;
# run directories are locked, and checkpoints carry a checksum and their experiment's fingerprint.
set -u
bitsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/expect.sh"

# expect_fast_error SECONDS ... : expect_error that must also finish within SECONDS.
expect_fast_error() {
  local limit="$1"; shift
  local start=$SECONDS
  expect_error "$@"
  [ $((SECONDS - start)) -le "$limit" ] || { echo "FAIL: $1: took $((SECONDS - start)) s (limit $limit s)"; fails=$((fails + 1)); }
}

# A small experiment on synthetic 28x28 data; layers and settings are replaced per case with --set.
cat > "$tmp/x.toml" <<'TOML'
name = "reliability"
seed = 3
[data]
dataset = "synthetic"
synthetic_train = 128
synthetic_test = 64
[model]
layers = [
  { type = "conv2d", out = 4, kernel = 5, stride = 2 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out = 10 },
]
[train]
epochs = 2
batch = 32
lr = 0.01
[numerics]
weights = "dfx<8,channel>"
activations = "dfx<8>"
errors = { format = "dfx<8>", rounding = "stochastic" }
accumulator = "int<24>"
TOML
x="$tmp/x.toml"
layers() { echo "model.layers=[$1]"; }

# --- Shapes through the whole network, checked before training.
for pool in avgpool maxpool; do
  expect_error "$pool window larger than its input" "model.layers[0] ($pool): window 50 larger than the input 32x1x28x28" \
    "$bitsim" train "$x" --set "$(layers "{type=\"$pool\",kernel=50},{type=\"flatten\"},{type=\"linear\",out=10}")"
done
expect_error "conv kernel larger than its input" "model.layers[0] (conv2d): kernel 30 does not fit the input 32x1x28x28" \
  "$bitsim" train "$x" --set "$(layers '{type="conv2d",out=4,kernel=30,stride=5},{type="flatten"},{type="linear",out=10}')"
expect_error "classifier with fewer outputs than classes" "model.layers[3] (linear): the network's output is 32x1 per batch; the loss needs 10" \
  "$bitsim" train "$x" --set "$(layers '{type="conv2d",out=4,kernel=5},{type="relu"},{type="flatten"},{type="linear",out=1}')"
expect_error "linear on an image" "model.layers[0] (linear): needs a flat input" \
  "$bitsim" train "$x" --set "$(layers '{type="linear",out=10}')"
expect_fast_error 20 "a layer too large for memory" "model.layers[1] (linear): its 16000000x784 weights need" \
  "$bitsim" train "$x" --set "$(layers '{type="flatten"},{type="linear",out=16000000},{type="linear",out=10}')"
expect_fast_error 20 "padding too large for memory" "model.layers[0] (conv2d): its im2col matrix of" \
  "$bitsim" train "$x" --set "$(layers '{type="conv2d",out=64,kernel=3,padding=60000},{type="flatten"},{type="linear",out=10}')"

# --- Keys and values.
expect_error "out on a relu" "model.layers[1]: 'out' is not a setting of a relu layer" \
  "$bitsim" train "$x" --set "$(layers '{type="flatten"},{type="relu",out=3},{type="linear",out=10}')"
expect_error "stride 0" "model.layers[0].stride: expected an integer in [1, 65536]" \
  "$bitsim" train "$x" --set "$(layers '{type="conv2d",out=4,kernel=5,stride=0},{type="flatten"},{type="linear",out=10}')"
expect_error "negative seed" "seed: expected a non-negative integer" "$bitsim" train "$x" --set seed=-1
expect_error "negative train_limit" "data.train_limit: expected a positive number of examples, or 0 for all" \
  "$bitsim" train "$x" --set data.train_limit=-1
expect_error "negative test_limit" "data.test_limit" "$bitsim" train "$x" --set data.test_limit=-5
expect_error "negative clip" "train.clip: expected a positive clipping bound" "$bitsim" train "$x" --set train.clip=-1
expect_error "infinite learning rate" "train.lr: expected a finite number" "$bitsim" train "$x" --set train.lr=inf
expect_error "nan momentum" "train.momentum: expected a finite number" "$bitsim" train "$x" --set train.momentum=nan
expect_error "no training examples" "data.synthetic_train: expected a number of training examples in [1, 1000000]" \
  "$bitsim" train "$x" --set data.synthetic_train=0
expect_error "empty test set" "data.synthetic_test" "$bitsim" train "$x" --set data.synthetic_test=0
expect_error "int overflow" "train.epochs: expected an integer in [" "$bitsim" train "$x" --set train.epochs=4294967297
# 600 examples at batch 1 for 2000 epochs: 1.2 M steps, more than the 2^20 a stochastic-rounding
# stream id can number.
expect_fast_error 20 "too many steps" "train.epochs: 1200000 steps; stochastic-rounding streams number at most 2^20 steps" \
  "$bitsim" train "$x" --set data.synthetic_train=600 --set train.batch=1 --set train.epochs=2000
long_name=$(head -c 20000000 /dev/zero | tr '\0' n)
printf 'name = "%s"\n' "$long_name" > "$tmp/long.toml"
expect_fast_error 10 "20 MB experiment file" "bytes; an experiment file is limited to 1048576 bytes" "$bitsim" train "$tmp/long.toml"
expect_fast_error 10 "long name" "name: expected 1 to 128 printable ASCII characters, got 'nnnn" \
  "$bitsim" train "$x" --set "name=\"$(head -c 3000 /dev/zero | tr '\0' n)\""
expect_error "escape codes in a value are escaped" "data.dataset '\"\\x1b[31mred\"': expected" \
  "$bitsim" train "$x" --set "data.dataset=\"$(printf '\033[31mred')\""

# --- Hardware, checked before training (the old order trained first and failed in the cost report).
expect_error "buffer 0" "hardware.buffer_kib: expected a buffer size" "$bitsim" train "$x" --set hardware.buffer_kib=0
expect_error "buffer 1e30" "hardware.buffer_kib: expected a buffer size" "$bitsim" train "$x" --set hardware.buffer_kib=1e30
expect_error "node 0" "hardware.node_nm: bad node 0 nm" "$bitsim" train "$x" --set hardware.node_nm=0
expect_error "negative bandwidth" "hardware.dram_bytes_per_cycle: expected a non-negative" \
  "$bitsim" train "$x" --set hardware.dram_bytes_per_cycle=-1
expect_error "missing cost table" "hardware.table: cannot read '$tmp/none.json'" "$bitsim" train "$x" --set "hardware.table=\"$tmp/none.json\""
expect_error "bad dataflow" "hardware.dataflow: bad dataflow 'xs': expected ws, os or is" "$bitsim" train "$x" --set hardware.dataflow=xs
expect_error "array with junk" "bad hardware.array '16x16junk'" "$bitsim" train "$x" --set hardware.array=16x16junk
[ ! -e "$tmp/never" ] || { echo "FAIL: a refused run left its directory"; fails=$((fails + 1)); }
# A run directory that cannot be made (its parent is a file: no permission bit stops root) and, for
# other users, one in a directory without write permission.
touch "$tmp/afile"
expect_error "run directory under a file" "$tmp/afile/run: cannot create the run directory" \
  "$bitsim" train "$x" --out "$tmp/afile/run"
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$tmp/ro" && chmod 500 "$tmp/ro"
  expect_error "unwritable run directory" "$tmp/ro/run: cannot" "$bitsim" train "$x" --out "$tmp/ro/run"
fi

# --- Data that does not fit together: test images of another size.
mkdir -p "$tmp/idx"
idx_images() { # FILE N H W: N images of HxW, all zero
  { printf '\x00\x00\x08\x03'; printf "\\x00\\x00\\x00\\x$(printf %02x "$2")"; printf "\\x00\\x00\\x00\\x$(printf %02x "$3")";
    printf "\\x00\\x00\\x00\\x$(printf %02x "$4")"; head -c $(($2 * $3 * $4)) /dev/zero; } | gzip > "$1"
}
idx_labels() { # FILE N
  { printf '\x00\x00\x08\x01'; printf "\\x00\\x00\\x00\\x$(printf %02x "$2")"; head -c "$2" /dev/zero; } | gzip > "$1"
}
idx_images "$tmp/idx/train-images-idx3-ubyte.gz" 40 28 28
idx_labels "$tmp/idx/train-labels-idx1-ubyte.gz" 40
idx_images "$tmp/idx/t10k-images-idx3-ubyte.gz" 8 14 14
idx_labels "$tmp/idx/t10k-labels-idx1-ubyte.gz" 8
expect_error "test images of another size" "data: test images are 1x14x14 but training images are 1x28x28" \
  "$bitsim" train "$x" --set data.dataset=fashion-mnist --set "data.dir=\"$tmp/idx\""
# A gzip bomb: a 300 MB stream of zeros behind a header announcing 40 images. Reading stops past
# the announced size, so the run is refused at once in bounded memory.
{ printf '\x00\x00\x08\x03\x00\x00\x00\x28\x00\x00\x00\x1c\x00\x00\x00\x1c'; head -c 300000000 /dev/zero; } | gzip -1 \
  > "$tmp/idx/train-images-idx3-ubyte.gz"
# The memory bound (ulimit -v) cannot hold an AddressSanitizer build, which reserves terabytes of
# shadow address space: there the bomb is checked for the refusal and its speed only.
limit="ulimit -v 2000000;"
ldd "$bitsim" 2>/dev/null | grep -q libasan && limit=""
expect_fast_error 10 "gzip bomb" "train-images-idx3-ubyte.gz: trailing bytes after the 31360 data bytes" \
  bash -c "$limit exec '$bitsim' train '$x' --set data.dataset=fashion-mnist --set 'data.dir=\"$tmp/idx\"'"

# --- Run directories: a lock, checksummed checkpoints, resume only the same experiment.
expect_ok "train" "run directory: $tmp/run" "$bitsim" train "$x" --out "$tmp/run" --threads 1
flock "$tmp/run/.lock" sleep 3 &
sleep 0.5
expect_error "a busy run directory" "$tmp/run: in use by another bitsim run" "$bitsim" train "$x" --out "$tmp/run"
wait
expect_error "resume with another seed" "--resume: the experiment differs from the one this run started with: seed '3' -> '4'" \
  "$bitsim" train "$x" --out "$tmp/run" --resume --set seed=4
expect_error "resume with another learning rate" "train.lr '0.01' -> '0.02'" \
  "$bitsim" train "$x" --out "$tmp/run" --resume --set train.lr=0.02
expect_error "resume with other numerics" "numerics.weights.format '\"dfx<8,channel>\"' -> '\"dfx<6,channel>\"'" \
  "$bitsim" train "$x" --out "$tmp/run" --resume --set 'numerics.weights="dfx<6,channel>"'
expect_error "resume with fewer epochs" "--resume: the run has done 2 epochs, more than train.epochs = 1" \
  "$bitsim" train "$x" --out "$tmp/run" --resume --set train.epochs=1
expect_ok "resume with more epochs (constant learning rate)" "run directory" \
  "$bitsim" train "$x" --out "$tmp/run" --resume --set train.epochs=3
ck="$tmp/run/checkpoint.bin"
cp "$ck" "$tmp/flipped.bin"
size=$(stat -c %s "$ck")
byte=$(od -An -tu1 -j $((size / 2)) -N1 "$ck" | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 4)))" | dd of="$tmp/flipped.bin" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_error "a flipped bit" "flipped.bin: corrupt: CRC-32" "$bitsim" infer "$x" --checkpoint "$tmp/flipped.bin"
head -c $((size - 100)) "$ck" > "$tmp/cut.bin"
expect_error "a truncated checkpoint" "cut.bin: corrupt: CRC-32" "$bitsim" infer "$x" --checkpoint "$tmp/cut.bin"
printf 'BITSIMC2' > "$tmp/hdr.bin"
expect_error "a damaged header" "hdr.bin: truncated" "$bitsim" infer "$x" --checkpoint "$tmp/hdr.bin"
expect_ok "infer the intact checkpoint" "64 test examples: accuracy" "$bitsim" infer "$x" --checkpoint "$ck"
# A checkpoint trained in fp32 evaluates under integer numerics (no optimizer state needed).
expect_ok "fp32 run" "run directory" "$bitsim" train "$x" --out "$tmp/fp32" --set 'numerics.weights="fp32"' \
  --set 'numerics.activations="fp32"' --set 'numerics.errors="fp32"' --set 'numerics.accumulator="fp32-reference"'
expect_ok "fp32 checkpoint under int8 numerics with the lazy update" "64 test examples: accuracy" \
  "$bitsim" infer "$x" --checkpoint "$tmp/fp32/checkpoint.bin" --set 'numerics.master="fixed<16,14>"' \
  --set 'numerics.lazy_accumulator="fixed<16,22>"'

# --- A diverging run says so, and exits 1 (the run failed; the input was valid).
out=$("$bitsim" train "$x" --set 'numerics.weights="fp32"' --set 'numerics.activations="fp32"' --set 'numerics.errors="fp32"' \
  --set 'numerics.accumulator="fp32-reference"' --set train.optimizer=sgd --set train.lr=1e30 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"training diverged at epoch 1"* ]] || { echo "FAIL: divergence: rc=$rc: $out"; fails=$((fails + 1)); }

# --- Numbers and hardware commands.
expect_ok "1e20000 overflows fp64" "inexact|overflow" "$bitsim" quantize --format fp64 1e20000
expect_fast_error 5 "a 10^6-digit number" "(1000000 characters)" \
  bash -c "head -c 1000000 /dev/zero | tr '\\0' 1 | '$bitsim' quantize --format fp16"
expect_fast_error 10 "a tiny bandwidth" "bad --bandwidth" "$bitsim" hw gemm --m 4 --k 4 --n 4 --bandwidth 1e-30
expect_fast_error 10 "a slow simulation" "more than the 2e+09 a simulation is allowed" \
  "$bitsim" hw gemm --m 4000 --k 4000 --n 4000 --bandwidth 0.001
expect_fast_error 20 "a GEMM too large for memory" "--m 100000 --k 100000 --n 100000: the operands, outputs and reference need" \
  "$bitsim" hw gemm --m 100000 --k 100000 --n 100000
expect_error "buffer 1e30 KiB" "bad --buffer-kib '1e30': at most" "$bitsim" hw gemm --buffer-kib 1e30
expect_error "a layer of more than 2^63 MACs" "a layer is limited to 2^63" \
  "$bitsim" cost roofline --array 16x16 --clock 1 --bandwidth 10 --gemm g=3000000x3000000x3000000

# --- Argument errors exit 2 with one line; help and version exit 0.
expect_error "missing argument" "experiment is required" "$bitsim" train
expect_error "unknown option" "--bogus" "$bitsim" quantize --format fp16 --bogus 1
expect_error "no subcommand" "subcommand" "$bitsim"
expect_error "bad option value" "--threads" "$bitsim" train "$x" --threads many
expect_ok "help" "Usage" "$bitsim" train --help
expect_ok "version" "bitsim" "$bitsim" --version
big=$(head -c 1000000 /dev/zero | tr '\0' 'q')
err=$("$bitsim" quantize --format "$big" 1 2>&1 >/dev/null)
[ ${#err} -lt 400 ] || { echo "FAIL: a 1 MB bad token gave a ${#err}-character error"; fails=$((fails + 1)); }

if [ $fails -ne 0 ]; then echo "$fails reliability checks failed"; exit 1; fi
echo "all reliability checks passed"
