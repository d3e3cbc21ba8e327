#!/usr/bin/env bash
# Run curvature's and PyTorch's benchmark tables on one GPU and print them side by side.
#
#   benches/gpu.sh [CURVATURE_BINARY] [OUT_DIR] [extra `curvature bench` flags...]
#
# CURVATURE_BINARY defaults to target/release/curvature (build it with
# `cargo build --release --features cuda`); OUT_DIR to bench-out. Writes ours-cuda.csv,
# torch.csv and compare.txt there. Needs python3 with torch on the machine.
set -uo pipefail
bin=${1:-target/release/curvature}
out=${2:-bench-out}
shift 2 2>/dev/null || true
mkdir -p "$out"
# cubecl compiles its kernels with NVRTC at run time: make the toolkit's or PyTorch's copy visible.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, q, "lib") for p in nvidia.__path__ for q in os.listdir(p)))' 2>/dev/null); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "== curvature =="
"$bin" bench --backend cuda --csv "$out/ours-cuda.csv" "$@" 2>&1 | tee "$out/ours-cuda.txt"
# The convolution lowering switch: our im2col + GEMM path (where burn's GPU matmul is at parity)
# against burn's conv2d above, on the two conv nets of the table.
echo "== curvature, --conv im2col =="
"$bin" bench --backend cuda --conv im2col --models cnn,vgg16-bn --no-kfac --repeats 5 \
  --csv "$out/ours-cuda-im2col.csv" 2>&1 | tee "$out/ours-cuda-im2col.txt"
echo "== pytorch =="
PYTHONUNBUFFERED=1 python3 "$(dirname "$0")/pytorch/bench.py" --csv "$out/torch.csv" 2>&1 | tee "$out/torch.txt"
echo "== ours / pytorch =="
python3 "$(dirname "$0")/pytorch/bench.py" --compare "$out/ours-cuda.csv" "$out/torch.csv" | tee "$out/compare.txt"
echo "== ours (--conv im2col) / pytorch =="
python3 "$(dirname "$0")/pytorch/bench.py" --compare "$out/ours-cuda-im2col.csv" "$out/torch.csv" | tee "$out/compare-im2col.txt"
# Data parallelism (issue #21): with several GPUs, the CNN and VGG-16-BN on 1 and 2 peers (one
# GPU each, each holding half of the batch of 256), side by side.
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "${gpus:-0}" -ge 2 ]; then
  for p in 1 2; do
    echo "== curvature, --peers $p (batch 256) =="
    "$bin" bench --backend cuda --models cnn,vgg16-bn --no-kfac --repeats 5 --batch 256 --peers "$p" \
      --csv "$out/ours-cuda-peers$p.csv" 2>&1 | tee "$out/ours-cuda-peers$p.txt"
  done
else
  echo "== one GPU: the multi-peer case (--peers 2) needs two; skipped =="
fi
