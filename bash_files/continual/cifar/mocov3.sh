#!/usr/bin/env bash
# CaSSLe protocol, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# MoCo v3 fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/mocov3.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# Source: solo-learn scripts/pretrain/cifar/mocov3.yaml (LARS lr 0.3, classifier lr 0.3, wd 1e-6,
# eta 0.02, clipped, bias/norm excluded, asymmetric augmentations, heads 4096-256 / 4096, T 0.2, tau
# 0.99 -> 1); 500 epochs per task, batch 256, 10 warmup epochs from 0.003: the CaSSLe CIFAR protocol
python main_continual.py \
    --method mocov3 \
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
    --lr 0.3 \
    --classifier_lr 0.3 \
    --weight_decay 1e-6 \
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
    --proj_hidden_dim 4096 \
    --output_dim 256 \
    --pred_hidden_dim 4096 \
    --temperature 0.2 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --name mocov3-cifar100 \
    --project cassle \
    --wandb
