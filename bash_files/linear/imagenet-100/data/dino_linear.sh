#!/usr/bin/env bash
# Linear evaluation of a DINO checkpoint: ImageNet-100, data-incremental, 5 tasks.
# Reference offline protocol: 100 epochs on augmented images, SGD (momentum 0.9, wd 0), lr 0.3
# x0.1 at epochs 60 and 80, batch 256; one all-class classifier, accuracy per task without masking.
# lr source: solo-learn bash_files/linear/imagenet-100/dino_linear.sh (commit 95886b6).
#
#   PRETRAINED_PATH=experiments/<run>/task4/last.ckpt DATA_DIR=/data \
#       bash bash_files/linear/imagenet-100/data/dino_linear.sh [extra flags]
#
# Extra flags are appended and win over the ones below (e.g. --mode fast, --label_fraction 0.01,
# --knn, --wandb). PYTHON, NUM_WORKERS and NUM_TASKS
# (default: the task count recorded in the checkpoint) may be set in the environment.
set -euo pipefail
: "${PRETRAINED_PATH:?set PRETRAINED_PATH to the checkpoint to evaluate (a task checkpoint, last.ckpt)}"
: "${DATA_DIR:?set DATA_DIR to the dataset folder}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"

"${PYTHON:-python}" "$ROOT/main_linear.py" \
    --dataset imagenet100 \
    --data_dir "$DATA_DIR" \
    --train_dir "${TRAIN_DIR:-train}" \
    --val_dir "${VAL_DIR:-val}" \
    --split_strategy data \
    ${NUM_TASKS:+--num_tasks "$NUM_TASKS"} \
    --mode augmented \
    --max_epochs 100 \
    --optimizer sgd \
    --scheduler step \
    --lr 0.3 \
    --lr_decay_steps 60 80 \
    --weight_decay 0 \
    --batch_size 256 \
    --num_workers "${NUM_WORKERS:-8}" \
    --name dino-imagenet100-data-linear-eval \
    --pretrained_feature_extractor "$PRETRAINED_PATH" \
    "$@"
