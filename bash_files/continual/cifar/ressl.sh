#!/usr/bin/env bash
# CaSSLe protocol, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# ReSSL fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/ressl.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# Source: solo-learn bash_files/pretrain/cifar/ressl.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# SGD lr 0.05, classifier lr 0.1, wd 1e-4, a strong first view and a weak second one
# (no colour jitter), heads 4096-256, tau 0.99 -> 1, T_q 0.1, T_k 0.04, queue 65536, momentum classifier;
# 500 epochs per task, batch 256 and no blur on 32 px: the CaSSLe CIFAR protocol.
python main_continual.py \
    --method ressl \
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
    --optimizer sgd \
    --lr 0.05 \
    --classifier_lr 0.1 \
    --weight_decay 1e-4 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.4 0.0 \
    --contrast 0.4 0.0 \
    --saturation 0.2 0.0 \
    --hue 0.1 0.0 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 4096 \
    --output_dim 256 \
    --queue_size 65536 \
    --temperature_q 0.1 \
    --temperature_k 0.04 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --momentum_classifier \
    --name ressl-cifar100 \
    --project cassle \
    --wandb
