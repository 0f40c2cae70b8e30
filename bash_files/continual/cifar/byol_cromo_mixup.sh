#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# BYOL + CroMo-Mixup (Mushtaq et al., ECCV 2024): CaSSLe's predictive distiller (its KD term,
# --lambdap 1.0) + --cl_strategy cromo_mixup (cross-task mixup + cross-model feature mixup).
# The recipe is CaSSLe's (this script = byol_distill.sh + the strategy), not the CroMo-Mixup paper's
# (750 epochs per task, lr 0.25 / 0.6, 500 images stored per task): README, differences.
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --buffer_size 500: ErumMushtaq/CroMo-Mixup README, CIFAR-100 5 tasks, --msize 500
#   --replay_batch_size 128: ErumMushtaq/CroMo-Mixup main_cont.py --replay_bs default 128 (its BYOL CIFAR-100
#     command sets --bsize 64 instead, which train_mixed_distillation_byol does not read)
#   --cromo_alpha 1.0: ErumMushtaq/CroMo-Mixup main_cont.py --alpha (lambda ~ Beta(1, 1))
#   --cromo_lambda beta: ErumMushtaq/CroMo-Mixup trainers/train_mixed_distillation.py, its BYOL trainer draws lam = np.random.beta(alpha, alpha) per step
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/byol_cromo_mixup.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
# --momentum_classifier (as the reference): a second online classifier on the momentum backbone;
# it only monitors, it never changes the backbone.
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
    --distiller predictive \
    --distill_lamb 1.0 \
    --distill_proj_hidden_dim 2048 \
    --buffer_size 500 \
    --replay_batch_size 128 \
    --cromo_alpha 1.0 \
    --cromo_lambda beta \
    --cl_strategy cromo_mixup \
    --name byol-cifar100-cassle-cromo-mixup \
    --project cassle \
    --wandb
