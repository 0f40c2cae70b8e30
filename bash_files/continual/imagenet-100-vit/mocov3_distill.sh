#!/usr/bin/env bash
# ImageNet-100 class-incremental, 5 tasks x 400 epochs, ViT-S/16, 2 GPUs x 128:
# MoCo v3 + CaSSLe (contrastive distiller) (not in the paper; issue 22).
# Backbone: vit_small (timm; CLS-token feature), ViT-S/16 on 224 px crops (14 x 14 tokens) as DINO
#   and MoCo v3; heads, augmentations and data flags of the ResNet ImageNet-100 scripts and the method.
# Optimiser: MoCo v3's ViT-Small recipe (Chen et al. 2021; facebookresearch/moco-v3 CONFIG.md, main_moco.py:
#   AdamW on all parameters, lr 1.5e-4 per 256 images, weight decay 0.1 fixed, 40 warmup epochs
#   from 0, cosine to 0, schedule per iteration, no layer-wise lr decay, no gradient clipping).
#   Online classifier lr 3e-4 (solo-learn scripts/pretrain/imagenet-100/mocov3_vit.yaml).
# Random patch projection (Chen et al. 2021 sec. 4.2; moco-v3 vits.py stop_grad_conv1, CONFIG.md
#   --stop-grad-conv1): the patch embedding stays at its random init (--freeze_patch_embed).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100-vit/mocov3_distill.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method mocov3 \
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
    --freeze_patch_embed \
    --accelerator gpu \
    --devices 2 \
    --strategy ddp \
    --sync_batchnorm \
    --precision auto \
    --batch_size 128 \
    --num_workers 5 \
    --optimizer adamw \
    --lr 1.5e-4 \
    --classifier_lr 3e-4 \
    --weight_decay 0.1 \
    --scheduler warmup_cosine \
    --scheduler_interval step \
    --warmup_epochs 40 \
    --warmup_start_lr 0.0 \
    --min_lr 0.0 \
    --crop_size 224 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 1.0 0.1 \
    --solarization_prob 0.0 0.2 \
    --proj_hidden_dim 4096 \
    --output_dim 256 \
    --pred_hidden_dim 4096 \
    --temperature 0.2 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --distiller contrastive \
    --distill_lamb 1.0 \
    --distill_temperature 0.2 \
    --distill_proj_hidden_dim 2048 \
    --check_val_every_n_epoch 999 \
    --name mocov3-vit-imagenet100-class-cassle \
    --project cassle \
    --wandb
