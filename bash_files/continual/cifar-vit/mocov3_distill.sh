#!/usr/bin/env bash
# CIFAR-100 class-incremental, 5 tasks x 500 epochs (the CaSSLe protocol), ViT-S/4, 1 GPU:
# MoCo v3 + CaSSLe (contrastive distiller) (not in the paper; issue 22).
# Backbone: vit_small (timm; CLS-token feature) with 4 px patches on the 32 px crop (8 x 8 tokens),
#   solo-learn's CIFAR ViT choice (scripts/pretrain/cifar/mae.yaml: patch_size 4, img_size 32).
# Optimiser: MoCo v3's ViT-Small recipe (Chen et al. 2021; facebookresearch/moco-v3 CONFIG.md, main_moco.py:
#   AdamW on all parameters, lr 1.5e-4 per 256 images, weight decay 0.1 fixed, 40 warmup epochs
#   from 0, cosine to 0, schedule per iteration, no layer-wise lr decay, no gradient clipping).
#   Online classifier lr 3e-4 (solo-learn scripts/pretrain/imagenet-100/mocov3_vit.yaml).
# Random patch projection (Chen et al. 2021 sec. 4.2; moco-v3 vits.py stop_grad_conv1, CONFIG.md
#   --stop-grad-conv1): the patch embedding stays at its random init (--freeze_patch_embed).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar-vit/mocov3_distill.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method mocov3 \
    --dataset cifar100 \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 500 \
    --backbone vit_small \
    --patch_size 4 \
    --freeze_patch_embed \
    --accelerator gpu \
    --devices 1 \
    --precision auto \
    --batch_size 256 \
    --online_eval_batch_size 256 \
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
    --distiller contrastive \
    --distill_lamb 1.0 \
    --distill_temperature 0.2 \
    --distill_proj_hidden_dim 2048 \
    --name mocov3-vit-cifar100-cassle \
    --project cassle \
    --wandb
