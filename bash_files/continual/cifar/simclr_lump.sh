#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# SimCLR + LUMP (Madaan et al., 2022).
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --buffer_size 256: divyam3897/UCL configs model.buffer_size (Madaan et al. 2022)
#   --lump_alpha 0.4: mixup lambda ~ Beta(0.4, 0.4), divyam3897/UCL configs train.alpha
#   --lump_views ssl: two fresh SSL views of the buffered image (UCL's stored view: --lump_views ucl)
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/simclr_lump.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
python main_continual.py \
    --method simclr \
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
    --lr 0.4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
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
    --output_dim 256 \
    --temperature 0.2 \
    --buffer_size 256 \
    --lump_alpha 0.4 \
    --lump_views ssl \
    --cl_strategy lump \
    --name simclr-cifar100-lump \
    --project cassle \
    --wandb
