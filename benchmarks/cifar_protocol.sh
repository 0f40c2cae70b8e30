#!/usr/bin/env bash
# The CIFAR-100 protocol on one GPU: fine-tuning, CaSSLe and offline for one method, run
# CONCURRENTLY (three job_launcher.py runs sharing the GPU, each with --eval), then one table:
# random init, fine-tuning, CaSSLe, offline x A, F, T, wall time, views/s (markdown and JSON).
#
#   fine-tuning  bash_files/continual/cifar/METHOD.sh          5 class-incremental tasks x EPOCHS
#   CaSSLe       bash_files/continual/cifar/METHOD_distill.sh  5 tasks x EPOCHS
#   offline      METHOD.sh with --num_tasks 1                  1 task (all 100 classes) x EPOCHS
# Offline sees the same images as often as the continual runs: every training image EPOCHS times
# (N x EPOCHS images in all for each run, the same number of optimizer steps).
#
# Calibration (an independent implementation, Barlow Twins, 5 x 30 epochs): random init 19.9,
# fine-tuning 42.7, CaSSLe 39.8, offline 48.5. At 30 epochs per task CaSSLe is still below
# fine-tuning; the paper's gains need long schedules (500 epochs per task).
#
# usage: bash benchmarks/cifar_protocol.sh [--dry_run] DATA_DIR OUT_DIR EPOCHS [METHOD]
#   DATA_DIR  CIFAR-100: torchvision's cifar-100-python/, or the npz layout (train_0..4.npz,
#             test.npz) in DATA_DIR or spread over its sub-folders (carried in several calls)
#   EPOCHS    epochs per task, or `auto`: the largest that fits BUDGET_S (at most MAX_EPOCHS,
#             default 500, the paper's schedule), from the probe below
#   METHOD    barlow (default), byol, mocov2plus, simclr, swav, vicreg
#   --dry_run run the 20-step throughput probe only and print the planned time at EPOCHS and the
#             largest EPOCHS that ends within BUDGET_S; trains nothing
# env: PYTHON (default .venv/bin/python if present, else python3); BUDGET_S (default 540 = 9 min);
#      EXTRA: more main_continual flags for every run (after the launcher's `--`), e.g. a CPU smoke
#      run: EXTRA="--backbone tiny --accelerator cpu --precision 32 --batch_size 16 --limit_train_batches 2"
# Every run gets `--no-wandb` (the lent GPU machine has no wandb; CSV logs are always written).
set -uo pipefail
T0=$(date +%s.%N)
DRY_RUN=0
POSITIONAL=()
for a in "$@"; do
    if [ "$a" = "--dry_run" ]; then DRY_RUN=1; else POSITIONAL+=("$a"); fi
done
USAGE="usage: bash benchmarks/cifar_protocol.sh [--dry_run] DATA_DIR OUT_DIR EPOCHS [METHOD]"
if [ "${#POSITIONAL[@]}" -lt 3 ] || [ "${#POSITIONAL[@]}" -gt 4 ]; then echo "$USAGE" >&2; exit 2; fi
DATA_DIR=$(readlink -f "${POSITIONAL[0]}")
OUT_DIR=${POSITIONAL[1]}
EPOCHS=${POSITIONAL[2]}
METHOD=${POSITIONAL[3]:-barlow}
[ "$METHOD" = "barlow_twins" ] && METHOD=barlow
BUDGET_S=${BUDGET_S:-540}
MAX_EPOCHS=${MAX_EPOCHS:-500}
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
FT_SCRIPT=bash_files/continual/cifar/$METHOD.sh
CS_SCRIPT=bash_files/continual/cifar/${METHOD}_distill.sh
if [ ! -f "$FT_SCRIPT" ] || [ ! -f "$CS_SCRIPT" ]; then
    echo "error: unknown METHOD '$METHOD' (no $FT_SCRIPT / $CS_SCRIPT); valid: $(ls bash_files/continual/cifar | grep -v _distill | sed 's/\.sh$//' | tr '\n' ' ')" >&2
    exit 2
fi
if [ "$EPOCHS" != auto ] && ! [[ "$EPOCHS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: EPOCHS must be a positive integer or 'auto', got '$EPOCHS'" >&2; exit 2
fi
[ -d "$DATA_DIR" ] || { echo "error: DATA_DIR $DATA_DIR is not a folder" >&2; exit 2; }
mkdir -p "$OUT_DIR" && OUT_DIR=$(readlink -f "$OUT_DIR")
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

# The data: torchvision's layout as it is; npz files linked from the sub-folders into
# OUT_DIR/data, which the runs record (main_linear.py --run_dir finds it again later).
DATA=$DATA_DIR
if [ ! -d "$DATA_DIR/cifar-100-python" ]; then
    . benchmarks/cifar_npz.sh
    DATA=$OUT_DIR/data
    mkdir -p "$DATA"
    gather_cifar_npz "$DATA_DIR" "$DATA" || exit 2
fi
export DATA_DIR=$DATA

# Flags after the launcher's `--`: the same for the three runs (and for the probe).
read -r -a COMMON <<< "--no_progress_bar --no-wandb ${EXTRA:-}"
OFFLINE_EXTRA="--num_tasks 1"

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

if [ "$DRY_RUN" = 1 ] || [ "$EPOCHS" = auto ]; then
    # a dry run plans a later run (its own time is not spent); auto trains right after the probe
    PLAN_EPOCHS=$EPOCHS SPENT=(--elapsed_s 0)
    [ "$EPOCHS" = auto ] && PLAN_EPOCHS=1 SPENT=(--elapsed_s "$(elapsed)" --count_probe)
    echo "== throughput probe ($METHOD; budget ${BUDGET_S} s)"
    "$PYTHON" benchmarks/cifar_protocol.py plan --finetune_script "$FT_SCRIPT" --cassle_script "$CS_SCRIPT" \
        --data_dir "$DATA" --epochs "$PLAN_EPOCHS" --offline_extra "$OFFLINE_EXTRA" --budget_s "$BUDGET_S" \
        "${SPENT[@]}" --json "$OUT_DIR/plan.json" -- --max_epochs "$PLAN_EPOCHS" "${COMMON[@]}" \
        2>&1 | tee "$OUT_DIR/plan.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: the throughput probe failed; see $OUT_DIR/plan.log" >&2; exit 1; }
    [ "$DRY_RUN" = 1 ] && exit 0
    EPOCHS=$("$PYTHON" -c "import json, sys; print(min(int(sys.argv[2]), json.load(open(sys.argv[1]))['largest_epochs']))" \
        "$OUT_DIR/plan.json" "$MAX_EPOCHS")
    if [ "$EPOCHS" -lt 1 ]; then
        echo "error: not even 1 epoch per task fits in the budget of ${BUDGET_S} s" >&2; exit 1
    fi
    echo "== EPOCHS=auto: $EPOCHS epochs per task"
fi

echo "== $METHOD: fine-tuning, CaSSLe, offline; $EPOCHS epochs per task, concurrently; logs in $OUT_DIR/<run>.log"
launch() {  # name script [more flags]: one launcher run in the background, timed
    local name=$1 script=$2; shift 2
    (
        start=$(date +%s.%N)
        "$PYTHON" job_launcher.py --script "$script" --experiment_dir "$OUT_DIR/$name" --eval -- \
            --max_epochs "$EPOCHS" "${COMMON[@]}" "$@" > "$OUT_DIR/$name.log" 2>&1
        rc=$?
        wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        printf '{"rc": %d, "wall_s": %s}\n' "$rc" "$wall" > "$OUT_DIR/$name.status.json"
        echo "   $name finished (exit $rc) after $wall s"
        exit $rc
    ) &
}
launch finetune "$FT_SCRIPT"
launch cassle "$CS_SCRIPT"
launch offline "$FT_SCRIPT" $OFFLINE_EXTRA
failed=()
for job in $(jobs -p); do wait "$job" || true; done
for name in finetune cassle offline; do
    if ! grep -q '"rc": 0' "$OUT_DIR/$name.status.json" 2>/dev/null; then
        failed+=("$name")
        echo "---- $name failed; the end of $OUT_DIR/$name.log:" >&2
        tail -n 25 "$OUT_DIR/$name.log" >&2
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: run(s) failed: ${failed[*]} (rerun the same command: finished tasks are skipped)" >&2
    exit 1
fi
echo "== table"
"$PYTHON" benchmarks/cifar_protocol.py report "$OUT_DIR" --method "$METHOD" --epochs "$EPOCHS" \
    --extra "${EXTRA:-}" --total_wall_s "$(elapsed)" \
    --command "bash benchmarks/cifar_protocol.sh ${POSITIONAL[0]} ${POSITIONAL[1]} $EPOCHS $METHOD"
