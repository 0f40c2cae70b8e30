#!/usr/bin/env bash
# GPU check of the Speed issue, in one short run on a machine with one CUDA GPU:
#   1. the GPU-only tests (on-device loader and hook, a tiny run_task on the GPU path, the batched
#      augmentation on CUDA); DALI tests run too where DALI is installed, else they skip;
#   2. benchmarks/throughput.py at the target setting: Barlow Twins + decorrelative, ResNet-18,
#      batch 256, CIFAR-100 (task 1 of 5), bf16-mixed + channels_last (auto), writing JSON.
# Without CUDA it refuses to run, unless EXTRA holds CPU smoke flags: then the GPU-only tests skip
# (pytest says why) and the throughput figures are CPU smoke figures (CI runs it so, on a Python
# without wandb and DALI, like the lent GPU machine).
#
# usage: bash benchmarks/gpu_check.sh DATA_DIR [OUT_DIR]
#   DATA_DIR  real CIFAR-100 in the npz layout: train_0.npz .. train_4.npz and test.npz, either in
#             DATA_DIR itself or spread over its sub-folders (one level down), so the files can be
#             carried to the device machine over several calls (see benchmarks/RESULTS.md).
#   OUT_DIR   where logs and JSON go (default: $OUT if set, else benchmarks/results).
# env: PYTHON (default .venv/bin/python if present, else python3), BATCH_SIZES (default "256";
#      e.g. "256 512"), STEPS (default 150), WARMUP (default 30), NUM_WORKERS (default 16),
#      EXTRA (main_continual flags appended to the throughput run's, e.g. for a CPU smoke run
#      "--backbone tiny --accelerator cpu --precision 32 --batch_size 16").
set -uo pipefail

DATA_DIR=$(readlink -f "${1:?usage: bash benchmarks/gpu_check.sh DATA_DIR [OUT_DIR]}")
OUT_DIR=${2:-${OUT:-benchmarks/results}}
mkdir -p "$OUT_DIR" && OUT_DIR=$(readlink -f "$OUT_DIR")
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
BATCH_SIZES=${BATCH_SIZES:-256}
STEPS=${STEPS:-150}
WARMUP=${WARMUP:-30}
NUM_WORKERS=${NUM_WORKERS:-16}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
cd "$(dirname "$0")/.." || exit 2

# Gather the npz parts into one folder (links only, nothing is copied).
. benchmarks/cifar_npz.sh
NPZ=$(mktemp -d -t cifar100_npz.XXXX)
trap 'rm -rf "$NPZ"' EXIT
gather_cifar_npz "$DATA_DIR" "$NPZ" || exit 2

status=0
{
    echo "== machine"; nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" -c "import sys, torch, importlib.metadata as md; cuda = torch.cuda.is_available(); print('torch', torch.__version__, 'lightning', md.version('pytorch_lightning'), 'cuda', cuda, torch.cuda.get_device_name(0) if cuda else ''); sys.exit(0 if cuda else 3)"
} 2>&1 | tee "$OUT_DIR/gpu_machine.log"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    if [ -z "${EXTRA:-}" ]; then
        echo "error: CUDA is not available to $PYTHON (for a CPU smoke run of this script set EXTRA, see its header)" >&2
        exit 2
    fi
    echo "== no CUDA: the GPU-only tests skip; throughput runs on the CPU with EXTRA=$EXTRA (smoke figures)"
fi

echo "== GPU-only tests"
"$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_gpu_loader.py tests/test_gpu_augment.py tests/test_dali.py \
    -k "cuda or dali" 2>&1 | tee "$OUT_DIR/gpu_tests.log" || status=1

for bs in $BATCH_SIZES; do
    echo "== throughput, batch $bs"
    "$PYTHON" benchmarks/throughput.py --method barlow_twins --distiller decorrelative --backbone resnet18 \
        --batch_size "$bs" --dataset cifar100 --data_dir "$NPZ" --num_tasks 5 --steps "$STEPS" \
        --warmup_steps "$WARMUP" --num_workers "$NUM_WORKERS" --precision auto --channels_last auto \
        --output "$OUT_DIR/throughput_gpu_bs$bs.json" -- ${EXTRA:-} 2>&1 | tee "$OUT_DIR/throughput_gpu_bs$bs.log" || status=1
done
echo "== done (status $status); JSON in $OUT_DIR"
exit $status
