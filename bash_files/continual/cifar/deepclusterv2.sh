#!/usr/bin/env bash
# CaSSLe protocol, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# DeepClusterV2 fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/deepclusterv2.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# Source: solo-learn scripts/pretrain/cifar/deepclusterv2.yaml (LARS lr 0.6, classifier lr 0.1, wd
# 1e-6, eta 0.02, clipped, bias/norm excluded, warmup 11 epochs from 0, min lr 6e-4, symmetric
# jitter 0.8/0.8/0.8/0.2, 3 x 3000 prototypes); no blur on 32 px images as the CaSSLe CIFAR scripts
# (solo-learn's current symmetric.yaml has 0.5); 500 epochs per task, batch 256: the CaSSLe CIFAR
# protocol
python main_continual.py \
    --method deepclusterv2 \
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
    --lr 0.6 \
    --classifier_lr 0.1 \
    --weight_decay 1e-6 \
    --scheduler warmup_cosine \
    --warmup_epochs 11 \
    --warmup_start_lr 0.0 \
    --min_lr 6e-4 \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.8 \
    --contrast 0.8 \
    --saturation 0.8 \
    --hue 0.2 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 2048 \
    --output_dim 128 \
    --num_prototypes 3000 3000 3000 \
    --temperature 0.1 \
    --kmeans_iters 10 \
    --name deepclusterv2-cifar100 \
    --project cassle \
    --wandb
