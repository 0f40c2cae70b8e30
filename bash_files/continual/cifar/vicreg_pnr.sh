#!/usr/bin/env bash
# PNR paper (Cha, Cho, Moon, ICML 2024), CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# VICReg + PNR (pnr_predictive_mse distiller).
# Source of the hyperparameters: csm9493/PNR bash_files/continual/cifar/vicreg_pnr.sh (the paper's public code); the flags it does not set are
# its defaults, which are CaSSLe's (as in vicreg_distill.sh).
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/vicreg_pnr.sh
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method vicreg \
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
    --weight_decay 1e-4 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 32 \
    --min_scale 0.2 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.1 \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --sim_loss_weight 25.0 \
    --var_loss_weight 25.0 \
    --cov_loss_weight 1.0 \
    --distiller pnr_predictive_mse \
    --distill_lamb 25.0 \
    --pnr_negative_lamb 23.0 \
    --distill_proj_hidden_dim 2048 \
    --name vicreg-cifar100-pnr \
    --project cassle \
    --wandb
