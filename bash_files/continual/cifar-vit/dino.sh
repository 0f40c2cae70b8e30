#!/usr/bin/env bash
# CIFAR-100 class-incremental, 5 tasks x 500 epochs (the CaSSLe protocol), ViT-S/4, 1 GPU:
# DINO fine-tuning baseline (not in the paper; issue 22).
# Backbone: vit_small (timm; CLS-token feature) with 4 px patches on the 32 px crop (8 x 8 tokens),
#   solo-learn's CIFAR ViT choice (scripts/pretrain/cifar/mae.yaml: patch_size 4, img_size 32).
# Optimiser: DINO's ViT recipe (Caron et al. 2021; facebookresearch/dino main_dino.py defaults:
#   AdamW, lr 5e-4 per 256 images, 10 warmup epochs from 0, cosine to min_lr 1e-6, per iteration,
#   weight decay 0.04 with biases and norms excluded, gradient clipping 3.0, last layer frozen for
#   1 epoch, teacher momentum 0.996 -> 1; no layer-wise lr decay), with its weight-decay cosine
#   schedule 0.04 -> 0.4 per iteration (--weight_decay_end 0.4) and stochastic depth 0.1 in the
#   student (--drop_path_rate 0.1); solo-learn's DINO ViT script keeps the weight decay fixed and
#   has neither drop path nor multi-crop.
#   Online classifier lr 3e-3 (solo-learn scripts/pretrain/imagenet-100/dino_vit.yaml).
# Multi-crop (main_dino.py DataAugmentationDINO): 2 global crops of area 0.4-1 (--min_scale 0.4),
#   8 small crops of 16 px, area 0.05-0.4, blur p 0.5 (DINO: 96 px for 224 px crops; 96/224 of
#   32 px is ~14, rounded up to the 4 px patch grid: 4 x 4 tokens); the teacher, the online
#   classifier and CaSSLe's distiller see the global crops only.
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar-vit/dino.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
python main_continual.py \
    --method dino \
    --dataset cifar100 \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 500 \
    --backbone vit_small \
    --patch_size 4 \
    --drop_path_rate 0.1 \
    --accelerator gpu \
    --devices 1 \
    --precision auto \
    --batch_size 256 \
    --online_eval_batch_size 256 \
    --num_workers 5 \
    --optimizer adamw \
    --exclude_bias_n_norm \
    --lr 5e-4 \
    --classifier_lr 3e-3 \
    --weight_decay 0.04 \
    --weight_decay_end 0.4 \
    --scheduler warmup_cosine \
    --scheduler_interval step \
    --warmup_epochs 10 \
    --warmup_start_lr 0.0 \
    --min_lr 1e-6 \
    --crop_size 32 \
    --min_scale 0.4 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 0.2 \
    --num_small_crops 8 \
    --small_crop_size 16 \
    --small_crop_min_scale 0.05 \
    --small_crop_max_scale 0.4 \
    --small_crop_gaussian_prob 0.5 \
    --proj_hidden_dim 2048 \
    --output_dim 256 \
    --num_prototypes 4096 \
    --norm_last_layer true \
    --clip_grad 3.0 \
    --freeze_last_layer 1 \
    --student_temperature 0.1 \
    --teacher_temperature 0.07 \
    --warmup_teacher_temperature 0.04 \
    --warmup_teacher_temperature_epochs 50 \
    --base_tau_momentum 0.996 \
    --final_tau_momentum 1.0 \
    --name dino-vit-cifar100 \
    --project cassle \
    --wandb
