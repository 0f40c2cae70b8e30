#!/usr/bin/env bash
# Linear evaluation of a SimCLR checkpoint: DomainNet, domain-incremental, 6 domains.
# Reference offline protocol: 100 epochs on augmented images, SGD (momentum 0.9, wd 0), lr 1.0
# x0.1 at epochs 60 and 80, batch 256; one all-class classifier, accuracy per task without masking.
#
#   PRETRAINED_PATH=experiments/<run>/task5/last.ckpt DATA_DIR=/data \
#       bash bash_files/linear/domainnet/simclr_linear.sh [extra flags]
#
# Extra flags are appended and win over the ones below (e.g. --mode fast, --label_fraction 0.01,
# --knn, --wandb). PYTHON, NUM_WORKERS and NUM_TASKS
# (default: the task count recorded in the checkpoint) may be set in the environment.
# --domain_eval both: domain-agnostic (one classifier on all domains, per-domain accuracy)
# and domain-aware (one classifier per domain, trained on it). Append --domain <name> for
# the reference's single-domain run.
set -euo pipefail
: "${PRETRAINED_PATH:?set PRETRAINED_PATH to the checkpoint to evaluate (a task checkpoint, last.ckpt)}"
: "${DATA_DIR:?set DATA_DIR to the dataset folder}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"

"${PYTHON:-python}" "$ROOT/main_linear.py" \
    --dataset domainnet \
    --data_dir "$DATA_DIR" \
    --split_strategy domain \
    ${NUM_TASKS:+--num_tasks "$NUM_TASKS"} \
    --domain_eval both \
    --mode augmented \
    --max_epochs 100 \
    --optimizer sgd \
    --scheduler step \
    --lr 1.0 \
    --lr_decay_steps 60 80 \
    --weight_decay 0 \
    --batch_size 256 \
    --num_workers "${NUM_WORKERS:-8}" \
    --name simclr-domainnet-linear-eval \
    --pretrained_feature_extractor "$PRETRAINED_PATH" \
    "$@"
