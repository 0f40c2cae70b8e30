#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# BYOL + POD-spatial (Douillard et al., 2020).
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --pod_lamb 3.0: lambda_spatial of Douillard et al. 2020 (PODNet, CIFAR-100), times sqrt(t + 1) (PODNet: sqrt(seen / task classes))
#   --pod_flat_lamb 0.0: POD-flat off, POD-spatial only (PODNet's CIFAR-100 config adds it with 1.0)
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/byol_pod.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
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
    --pod_lamb 3.0 \
    --pod_flat_lamb 0.0 \
    --cl_strategy pod \
    --name byol-cifar100-pod \
    --project cassle \
    --wandb
