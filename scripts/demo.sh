#!/usr/bin/env bash
# The README's demo: fine-tuning and CaSSLe side by side on the procedural shapes set, on the CPU.
#
#   bash scripts/demo.sh [OUT_DIR] [METHOD]       (default: experiments/shapes-demo, simclr)
#
# Writes the shapes (python -m cassle.data.demo DATA --set shapes --image_size 16; DATA_DIR, default
# data/shapes, kept between runs), then runs bash_files/continual/shapes/METHOD.sh (fine-tuning) and
# METHOD_distill.sh (CaSSLe) CONCURRENTLY through job_launcher.py --eval, each in its own process with one
# intra-op thread and no data workers (two processes on two cores: no oversubscription, and a busy machine
# slows them down in proportion instead of collapsing OpenMP's spinning threads). Then one table
# (random init, fine-tuning, CaSSLe: A, F, T, wall time) in OUT_DIR/demo.md (and .json), and the two
# accuracy-matrix PNGs. Rerunning the same command resumes (finished tasks are skipped).
# env: PYTHON (default: python), DATA_DIR, THREADS (intra-op threads per run, default 1).
set -uo pipefail
T0=$(date +%s.%N)
cd "$(dirname "$0")/.." || exit 2
OUT_DIR=${1:-experiments/shapes-demo}
METHOD=${2:-simclr}
PYTHON=${PYTHON:-python}
DATA=${DATA_DIR:-data/shapes}
FT_SCRIPT=bash_files/continual/shapes/$METHOD.sh
CS_SCRIPT=bash_files/continual/shapes/${METHOD}_distill.sh
if [ ! -f "$FT_SCRIPT" ] || [ ! -f "$CS_SCRIPT" ]; then
    echo "error: no $FT_SCRIPT / $CS_SCRIPT for METHOD '$METHOD'" >&2; exit 2
fi
if [ ! -f "$DATA/classes.txt" ]; then
    "$PYTHON" -m cassle.data.demo "$DATA" --set shapes --image_size 16 || exit 2
fi
mkdir -p "$OUT_DIR" && OUT_DIR=$(readlink -f "$OUT_DIR")
export DATA_DIR=$(readlink -f "$DATA") PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
# One thread per run: torch reads OMP_NUM_THREADS at start-up (intra-op pool), MKL its own.
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

echo "== $METHOD on shapes: fine-tuning and CaSSLe, concurrently; logs in $OUT_DIR/<run>.log"
launch() {  # name script: one launcher run in the background, timed
    local name=$1 script=$2
    (
        start=$(date +%s.%N)
        "$PYTHON" job_launcher.py --script "$script" --experiment_dir "$OUT_DIR/$name" --eval -- --no-wandb \
            > "$OUT_DIR/$name.log" 2>&1
        rc=$?
        printf '{"rc": %d, "wall_s": %s}\n' "$rc" "$(elapsed "$start")" > "$OUT_DIR/$name.status.json"
        echo "   $name finished (exit $rc) after $(elapsed "$start") s"
        exit $rc
    ) &
}
launch finetune "$FT_SCRIPT"
launch cassle "$CS_SCRIPT"
for job in $(jobs -p); do wait "$job" || true; done
failed=()
for name in finetune cassle; do
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
"$PYTHON" scripts/demo_report.py "$OUT_DIR" --method "$METHOD" --total_wall_s "$(elapsed "$T0")" \
    --command "bash scripts/demo.sh ${1:-} ${2:-}"
