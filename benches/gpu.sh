#!/usr/bin/env bash
# Every GPU measurement of issue #22 in one prepared run that fits a time budget: curvature's
# table with burn's conv2d and with our im2col + GEMM lowering, PyTorch's table, the side-by-side
# comparisons, and (given a build with autotuning) the autotuning cache cold and warm.
#
#   benches/gpu.sh [CURVATURE_BINARY] [OUT_DIR]
#
# CURVATURE_BINARY defaults to target/release/curvature; nothing is built here: build the
# binaries on another machine with benches/gpu-build.sh (stripped and gzipped into .device-bin/,
# `*.gz` binaries are unpacked to a temporary directory) and carry them over. OUT_DIR defaults
# to bench-out. Environment:
#   BUDGET=450     seconds for the whole script (default 450: an 8-minute device call with
#                  time to spare). Every step runs under `timeout` with what is left, steps are
#                  in order of value, and a step that would start with under 15 s left is
#                  skipped and says so. `curvature bench` prints and writes each row as soon as
#                  it is measured, so a step cut short keeps the rows it finished.
#   STEPS          which groups to run, comma-separated, in this order: ours (burn's conv2d, all
#                  four models), torch, im2col, kfac (KFAC's Newton–Schulz device inverses
#                  against the host eigendecompositions), tune, fusion, peers. Default
#                  ours,torch,im2col,kfac,tune. A cold autotuning run alone took minutes on an
#                  H100, so give it a call of its own: STEPS=tune,fusion with a smaller
#                  BUDGET (docs/benchmarks.md, "Pending GPU rows": two calls in 15 minutes).
#   TUNED_BINARY   a second build with `--features cuda,autotune`, for the tune group: runs
#                  `curvature tune` on a cold cache (a fresh directory under OUT_DIR) and then
#                  the bench on the warm one.
#   FUSED_BINARY   a build with `--features cuda,fusion`, for the fusion group (burn's operation
#                  fusion under our nested autodiff): the MLP, CNN and VGG-16-BN rows again.
#   Data-parallel rows (group peers) need two GPUs.
# Needs python3 with torch on the machine for the PyTorch rows.
set -uo pipefail
bin=${1:-target/release/curvature}
out=${2:-bench-out}
budget=${BUDGET:-450}
steps=",${STEPS:-ours,torch,im2col,kfac,tune},"
want() { [[ $steps == *",$1,"* ]]; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
# A gzipped binary (benches/gpu-build.sh) is unpacked outside OUT_DIR, which only holds results.
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
unpack() {
  case $1 in
    *.gz) local to="$unpacked/$(basename "$1" .gz)"; gunzip -c "$1" > "$to" && chmod +x "$to" && echo "$to" ;;
    *) realpath "$1" ;;
  esac
}
bin=$(unpack "$bin")
[ -n "${TUNED_BINARY:-}" ] && TUNED_BINARY=$(unpack "$TUNED_BINARY")
[ -n "${FUSED_BINARY:-}" ] && FUSED_BINARY=$(unpack "$FUSED_BINARY")
here=$(cd "$(dirname "$0")" && pwd)
start=$SECONDS
# cubecl compiles its kernels with NVRTC at run time: make the toolkit's or PyTorch's copy visible.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, q, "lib") for p in nvidia.__path__ for q in os.listdir(p)))' 2>/dev/null); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done

# step NAME LIMIT_S COMMAND...: run COMMAND (output to the terminal and to OUT/NAME.txt) for at
# most LIMIT_S seconds and at most what is left of the budget.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - (SECONDS - start)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    echo "== [$((SECONDS - start)) s] $name: skipped, ${left} s of the ${budget}-s budget left =="
    echo "$name skipped" >> "$out/steps.txt"
    return
  fi
  echo "== [$((SECONDS - start)) s] $name (at most ${limit} s) =="
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  case $rc in
    0) echo "$name done in $((SECONDS - t0)) s" | tee -a "$out/steps.txt" ;;
    124|137) echo "$name cut at ${limit} s (rows measured so far are kept)" | tee -a "$out/steps.txt" ;;
    *) echo "$name failed (exit $rc) after $((SECONDS - t0)) s" | tee -a "$out/steps.txt" ;;
  esac
}
compare() {
  [ -s "$1" ] && [ -s "$2" ] && python3 "$here/pytorch/bench.py" --compare "$1" "$2" | tee "$3"
}

: > "$out/steps.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt" || true
date -u +%FT%TZ | tee -a "$out/device.txt"

# 1. Ours, burn's conv2d (the default lowering on a GPU). The small models with every row,
#    KFAC included; the large ones without KFAC (a host eigendecomposition of factors up to
#    5761 × 5761) and with fewer calls: WRN-28-10's gradient is of the order of a second here.
if want ours; then
  step ours-small 80 "$bin" bench --backend cuda --models mlp,cnn --repeats 5 --csv "$out/ours-small.csv"
  step ours-vgg 70 "$bin" bench --backend cuda --models vgg16-bn --no-kfac --repeats 3 --csv "$out/ours-vgg.csv"
  step ours-wrn 110 "$bin" bench --backend cuda --models wrn-28-10 --no-kfac --repeats 1 --warmup 1 \
    --lanczos-steps 2 --lanczos-opt-rank 2 --csv "$out/ours-wrn.csv"
fi
# 2. PyTorch eager on the same shapes (strict f32).
want torch && step torch 90 env PYTHONUNBUFFERED=1 python3 "$here/pytorch/bench.py" --repeats 5 --csv "$out/torch.csv"
# 3. The lowering switch: our im2col + GEMM convolutions on the conv nets.
want im2col && step ours-im2col 60 "$bin" bench --backend cuda --conv im2col --models cnn,vgg16-bn --no-kfac \
  --repeats 3 --csv "$out/ours-im2col.csv"
# 4. KFAC's factor inversion on the device (Newton–Schulz, π-split) against the host
#    eigendecomposition (group ours): the plain, factor and inversion steps of the MLP and CNN.
want kfac && step kfac-newton-schulz 60 "$bin" bench --backend cuda --models mlp,cnn --no-curvature \
  --repeats 3 --kfac-solver newton-schulz --csv "$out/kfac-newton-schulz.csv"
# 5. Autotuning: a cold cache filled by `curvature tune`, then the bench on the warm cache.
#    The cache goes to a fresh directory (cubecl reads `cubecl.toml` from the working
#    directory), so the first run is cold whatever ran on the machine before; the warm run
#    shows what a tuned start costs ("first") and what tuning buys (against ours-small).
if want tune && [ -n "${TUNED_BINARY:-}" ]; then
  tuned=$TUNED_BINARY
  mkdir -p "$out/tuned" && rm -rf "$out/tuned/cache"
  printf '[autotune]\ncache = { file = "%s" }\n' "$out/tuned/cache" > "$out/tuned/cubecl.toml"
  step tune-cold 330 env -C "$out/tuned" "$tuned" tune --backend cuda --models mlp,cnn
  step tuned-warm 100 env -C "$out/tuned" "$tuned" bench --backend cuda --models mlp,cnn \
    --no-kfac --repeats 3 --csv "$out/ours-tuned.csv"
elif want tune; then
  echo "== tune: skipped, no TUNED_BINARY (a build with --features cuda,autotune) =="
fi
# 6. burn's operation fusion, nested under our autodiff.
if want fusion && [ -n "${FUSED_BINARY:-}" ]; then
  step ours-fused 120 "$FUSED_BINARY" bench --backend cuda --models mlp,cnn,vgg16-bn --no-kfac \
    --repeats 3 --csv "$out/ours-fused.csv"
elif want fusion; then
  echo "== fusion: skipped, no FUSED_BINARY (a build with --features cuda,fusion) =="
fi
# 7. Two peers on two GPUs (issue #21), when asked for and present.
if want peers && [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
  for p in 1 2; do
    step "ours-peers$p" 60 "$bin" bench --backend cuda --models cnn,vgg16-bn --no-kfac --repeats 3 \
      --batch 256 --peers "$p" --csv "$out/ours-peers$p.csv"
  done
fi

echo "== [$((SECONDS - start)) s] ours / pytorch =="
for f in "$out"/ours-*.csv; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .csv)
  echo "-- $name --"
  compare "$f" "$out/torch.csv" "$out/compare-${name#ours-}.txt"
done
echo "== finished in $((SECONDS - start)) s of ${budget} =="
cat "$out/steps.txt"
