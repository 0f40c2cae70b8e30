#!/usr/bin/env bash
# CaSSLe protocol, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# SimSiam + CaSSLe (predictive distiller) (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/simsiam_distill.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# Source: solo-learn bash_files/pretrain/cifar/simsiam.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# SGD lr 0.5, classifier lr 0.1, wd 1e-5, jitter 0.4/0.4/0.4/0.1, zero-init residual,
# heads 2048-2048 / 512;
# 500 epochs per task, batch 256 and no blur on 32 px: the CaSSLe CIFAR protocol.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method simsiam \
    --dataset cifar100 \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 500 \
    --backbone resnet18 \
    --zero_init_residual \
    --accelerator gpu \
    --devices 1 \
    --precision auto \
    --batch_size 256 \
    --online_eval_batch_size 256 \
    --num_workers 5 \
    --optimizer sgd \
    --lr 0.5 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.4 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --pred_hidden_dim 512 \
    --distiller predictive \
    --distill_lamb 1.0 \
    --distill_proj_hidden_dim 2048 \
    --name simsiam-cifar100-cassle \
    --project cassle \
    --wandb
