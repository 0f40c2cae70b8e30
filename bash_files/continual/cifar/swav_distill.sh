#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# SwAV + CaSSLe (knowledge distiller).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/swav_distill.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
# LARS without the bias/norm exclusion, as the reference's CIFAR SwAV recipe.
python main_continual.py \
    --method swav \
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
    --lr 0.6 \
    --min_lr 6e-4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-6 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
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
    --num_prototypes 3000 \
    --temperature 0.1 \
    --sk_epsilon 0.05 \
    --sk_iters 3 \
    --queue_size 3840 \
    --epoch_queue_starts 50 \
    --freeze_prototypes_epochs 2 \
    --distiller knowledge \
    --distill_lamb 1.0 \
    --distill_temperature 0.1 \
    --distill_proj_hidden_dim 2048 \
    --name swav-cifar100-cassle \
    --project cassle \
    --wandb
