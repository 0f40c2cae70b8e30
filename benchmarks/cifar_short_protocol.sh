#!/usr/bin/env bash
# The short-schedule sanity check on real CIFAR-100 (GPU): Barlow Twins, ResNet-18, batch 256,
# 5 class-incremental tasks x 30 epochs, fine-tuning vs CaSSLe, plus offline (1 task, 30 epochs of
# the whole set: the same number of images seen), each followed by the run-folder evaluation
# (linear probe on frozen features, fast mode; a random-init backbone as the baseline).
#
# Figures measured with an independent implementation at this budget (DEVELOPERS' guide): random
# init 19.9, fine-tuning 42.7, CaSSLe 39.8, offline 48.5. At 30 epochs per task nothing is
# forgotten yet, so CaSSLe is not expected to win here; the paper's gains need 500 epochs per task.
#
# usage: bash benchmarks/cifar_short_protocol.sh DATA_DIR [OUT_DIR] [EPOCHS]
# env: PYTHON (default python3); EXTRA: more main_continual flags for every run, e.g. a CPU
#      smoke run: EXTRA="--backbone tiny --accelerator cpu --precision 32 --limit_train_batches 2"
set -euo pipefail
DATA_DIR=$(readlink -f "${1:?usage: bash benchmarks/cifar_short_protocol.sh DATA_DIR [OUT_DIR] [EPOCHS]}")
OUT_DIR=${2:-experiments/short_protocol}
EPOCHS=${3:-30}
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export DATA_DIR PYTHONWARNINGS=ignore

run() {  # name script extra-args...
    local name=$1 script=$2; shift 2
    "$PYTHON" job_launcher.py --script "$script" --experiment_dir "$OUT_DIR/$name" --eval -- \
        --max_epochs "$EPOCHS" --no_progress_bar ${EXTRA:-} "$@"
}
run finetune bash_files/continual/cifar/barlow.sh
run cassle bash_files/continual/cifar/barlow_distill.sh
run offline bash_files/continual/cifar/barlow.sh --num_tasks 1
for name in finetune cassle offline; do
    "$PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); print(f'{sys.argv[2]:9s} A={r[\"A\"]:.2f}', 'random-init row:', r.get('random_baseline'))" \
        "$OUT_DIR/$name/eval/results.json" "$name"
done
