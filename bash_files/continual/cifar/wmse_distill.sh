#!/usr/bin/env bash
# CaSSLe protocol, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# W-MSE + CaSSLe (predictive distiller) (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/wmse_distill.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# Source: solo-learn bash_files/pretrain/cifar/wmse.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# Adam lr 3e-3, classifier lr 3e-3, wd 1e-6, 2 warmup epochs from 0, min scale 0.2,
# heads 1024-64, whitening slices of 128;
# 500 epochs per task, batch 256 and no blur on 32 px: the CaSSLe CIFAR protocol.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method wmse \
    --dataset cifar100 \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 500 \
    --backbone resnet18 \
    --accelerator gpu \
    --devices 1 \
    --precision auto \
    --batch_size 256 \
    --online_eval_batch_size 256 \
    --num_workers 5 \
    --optimizer adam \
    --lr 3e-3 \
    --classifier_lr 3e-3 \
    --weight_decay 1e-6 \
    --scheduler warmup_cosine \
    --warmup_epochs 2 \
    --warmup_start_lr 0 \
    --crop_size 32 \
    --min_scale 0.2 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 1024 \
    --output_dim 64 \
    --whitening_size 128 \
    --whitening_iters 1 \
    --distiller predictive \
    --distill_lamb 1.0 \
    --distill_proj_hidden_dim 2048 \
    --name wmse-cifar100-cassle \
    --project cassle \
    --wandb
