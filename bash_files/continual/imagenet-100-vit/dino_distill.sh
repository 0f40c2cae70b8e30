#!/usr/bin/env bash
# ImageNet-100 class-incremental, 5 tasks x 400 epochs, ViT-S/16, 2 GPUs x 128:
# DINO + CaSSLe (knowledge distiller) (not in the paper; issue 22).
# Backbone: vit_small (timm; CLS-token feature), ViT-S/16 on 224 px crops (14 x 14 tokens) as DINO
#   and MoCo v3; heads, augmentations and data flags of the ResNet ImageNet-100 scripts and the method.
# Optimiser: DINO's ViT recipe (Caron et al. 2021; facebookresearch/dino main_dino.py defaults:
#   AdamW, lr 5e-4 per 256 images, 10 warmup epochs from 0, cosine to min_lr 1e-6, per iteration,
#   weight decay 0.04 with biases and norms excluded, gradient clipping 3.0, last layer frozen for
#   1 epoch, teacher momentum 0.996 -> 1; no layer-wise lr decay), with its weight-decay cosine
#   schedule 0.04 -> 0.4 per iteration (--weight_decay_end 0.4) and stochastic depth 0.1 in the
#   student (--drop_path_rate 0.1); solo-learn's DINO ViT script keeps the weight decay fixed and
#   has neither drop path nor multi-crop.
#   Online classifier lr 3e-3 (solo-learn scripts/pretrain/imagenet-100/dino_vit.yaml).
# Multi-crop (main_dino.py DataAugmentationDINO): 2 global crops of area 0.4-1 (--min_scale 0.4),
#   8 small crops of 96 px, area 0.05-0.4, blur p 0.5; the teacher, the online classifier and
#   CaSSLe's distiller see the global crops only.
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100-vit/dino_distill.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
# Heads as DINO's boosted ViT-S/16 run (facebookresearch/dino README: 65536 prototypes, no
# last-layer norm, teacher temperature 0.04 -> 0.07 over 30 epochs); multi-crop as above.
python main_continual.py \
    --method dino \
    --dataset imagenet100 \
    --dali \
    --data_dir $DATA_DIR \
    --train_dir train \
    --val_dir val \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 400 \
    --backbone vit_small \
    --patch_size 16 \
    --drop_path_rate 0.1 \
    --accelerator gpu \
    --devices 2 \
    --strategy ddp \
    --sync_batchnorm \
    --precision auto \
    --batch_size 128 \
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
    --crop_size 224 \
    --min_scale 0.4 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 1.0 0.1 \
    --solarization_prob 0.0 0.2 \
    --num_small_crops 8 \
    --small_crop_size 96 \
    --small_crop_min_scale 0.05 \
    --small_crop_max_scale 0.4 \
    --small_crop_gaussian_prob 0.5 \
    --proj_hidden_dim 2048 \
    --output_dim 256 \
    --num_prototypes 65536 \
    --norm_last_layer false \
    --clip_grad 3.0 \
    --freeze_last_layer 1 \
    --student_temperature 0.1 \
    --teacher_temperature 0.07 \
    --warmup_teacher_temperature 0.04 \
    --warmup_teacher_temperature_epochs 30 \
    --base_tau_momentum 0.996 \
    --final_tau_momentum 1.0 \
    --distiller knowledge \
    --distill_lamb 1.0 \
    --distill_temperature 0.1 \
    --distill_proj_hidden_dim 2048 \
    --check_val_every_n_epoch 999 \
    --name dino-vit-imagenet100-class-cassle \
    --project cassle \
    --wandb
