#!/usr/bin/env bash
# CaSSLe protocol, ImageNet-100 data-incremental, 5 tasks x 400 epochs, ResNet-18, 2 GPUs x 128:
# W-MSE fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100/data/wmse.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# Source: solo-learn bash_files/pretrain/imagenet-100/wmse.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# Adam lr 2e-3, classifier lr 3e-3, wd 1e-6, 2 warmup epochs from 0, jitter 0.8/0.8/0.8/0.2,
# blur p 0.2, no solarisation, min scale 0.08, heads 1024-64 (its default hidden width),
# whitening slices of 128; batch 128 per GPU as the ImageNet-100 protocol of this folder (and
# solo-learn's scripts/pretrain/imagenet-100/wmse.yaml; the Nov 2021 script had 256):
# 128 is a whole number of whitening slices.
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method wmse \
    --dataset imagenet100 \
    --dali \
    --data_dir $DATA_DIR \
    --train_dir train \
    --val_dir val \
    --split_strategy data \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 400 \
    --backbone resnet18 \
    --accelerator gpu \
    --devices 2 \
    --strategy ddp \
    --sync_batchnorm \
    --precision auto \
    --batch_size 128 \
    --num_workers 5 \
    --optimizer adam \
    --lr 2e-3 \
    --classifier_lr 3e-3 \
    --weight_decay 1e-6 \
    --scheduler warmup_cosine \
    --warmup_epochs 2 \
    --warmup_start_lr 0 \
    --crop_size 224 \
    --min_scale 0.08 \
    --brightness 0.8 \
    --contrast 0.8 \
    --saturation 0.8 \
    --hue 0.2 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.2 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 1024 \
    --output_dim 64 \
    --whitening_size 128 \
    --whitening_iters 1 \
    --check_val_every_n_epoch 9999 \
    --name wmse-imagenet100-data \
    --project cassle \
    --wandb
