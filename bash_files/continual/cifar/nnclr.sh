#!/usr/bin/env bash
# CaSSLe protocol, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# NNCLR fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/nnclr.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# Source: solo-learn bash_files/pretrain/cifar/nnclr.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# LARS lr 0.4, eta 0.02, clipped, bias/norm excluded, classifier lr 0.1, wd 1e-5,
# solarisation 0.0/0.2, T 0.2, heads 2048-256 / 4096, support set 65536;
# 500 epochs per task, batch 256 and no blur on 32 px: the CaSSLe CIFAR protocol.
python main_continual.py \
    --method nnclr \
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
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 0.2 \
    --proj_hidden_dim 2048 \
    --output_dim 256 \
    --pred_hidden_dim 4096 \
    --temperature 0.2 \
    --queue_size 65536 \
    --name nnclr-cifar100 \
    --project cassle \
    --wandb
