#!/usr/bin/env bash
# PNR paper (Cha, Cho, Moon, ICML 2024), CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# BYOL + PNR (pnr_predictive distiller).
# Source of the hyperparameters: csm9493/PNR bash_files/continual/cifar/byol_pnr.sh (the paper's public code); the flags it does not set are
# its defaults, which are CaSSLe's (as in byol_distill.sh).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/byol_pnr.sh
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method byol \
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
    --lr 1.0 \
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
    --proj_hidden_dim 4096 \
    --output_dim 256 \
    --pred_hidden_dim 4096 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --momentum_classifier \
    --distiller pnr_predictive \
    --distill_lamb 1.0 \
    --pnr_negative_lamb 0.5 \
    --distill_proj_hidden_dim 2048 \
    --name byol-cifar100-pnr \
    --project cassle \
    --wandb
