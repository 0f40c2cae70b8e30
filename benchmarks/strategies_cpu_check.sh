#!/usr/bin/env bash
# CPU learning check of the continual strategies on real CIFAR-100 (not a paper number): Barlow Twins
# with fine-tuning, CaSSLe and every --cl_strategy, 5 class-incremental tasks, tiny backbone, a very
# short schedule (10 steps of 128 images per task), through the launcher grid, then the fast linear
# probe on 10% of the labels and the comparison table. Usage:
#   DATA_DIR=/path/to/cifar100-npz OUT=experiments/strategies-cpu-check bash benchmarks/strategies_cpu_check.sh
set -euo pipefail
: "${DATA_DIR:?set DATA_DIR to the CIFAR-100 folder (train_*.npz + test.npz)}"
OUT=${OUT:-experiments/strategies-cpu-check}
PY=${PYTHON:-python}
SCRIPTS=()
for v in "" _distill _ewc _si _replay _der _derpp _lump _less_forget _pod _pfr _co2l _cromo_mixup _osiris; do
    SCRIPTS+=("bash_files/continual/cifar/barlow${v}.sh")
done
export DATA_DIR
$PY job_launcher.py --script "${SCRIPTS[@]}" --seeds 1 --experiment_dir "$OUT" -- \
    --backbone tiny --accelerator cpu --devices 1 --precision 32 --no-wandb --num_workers 0 \
    --data_device cpu_batched --batch_size 128 --max_epochs 1 --limit_train_batches 10 \
    --limit_val_batches 0 --online_eval_batch_size 0 --warmup_epochs 0 \
    --proj_hidden_dim 256 --output_dim 256 --distill_proj_hidden_dim 256 --ewc_fisher_samples 1280 \
    --replay_batch_size 128 \
    --no_progress_bar
for run in "$OUT"/*/; do
    [ -d "$run/task0" ] || continue  # e.g. compare/ of an earlier call
    [ -f "$run/eval/results.json" ] || $PY main_linear.py --run_dir "$run" --mode fast --label_fraction 0.1 \
        --accelerator cpu --max_epochs 30
done
$PY main_linear.py --compare "$OUT" --output_dir "$OUT/compare"
