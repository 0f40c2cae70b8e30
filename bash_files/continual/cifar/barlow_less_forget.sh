#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# Barlow Twins + Less-Forget (Hou et al., 2019).
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --less_forget_lamb 5.0: lambda_base of Hou et al. 2019 (LUCIR), times sqrt(old / new tasks)
#   --less_forget_features pre_relu: pooled last stage before its final ReLU, as LUCIR (hshustc/CVPR19_Incremental_Learning)
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/barlow_less_forget.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
python main_continual.py \
    --method barlow_twins \
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
    --classifier_lr 0.1 \
    --weight_decay 1e-4 \
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
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --lamb 0.005 \
    --scale_loss 0.1 \
    --less_forget_lamb 5.0 \
    --less_forget_features pre_relu \
    --cl_strategy less_forget \
    --name barlow-cifar100-less-forget \
    --project cassle \
    --wandb
