#!/usr/bin/env bash
# CPU demo (not a paper number): NNCLR fine-tuning on scikit-learn's digits (bundled, no download),
# class-incremental, 5 tasks of 2 classes x 10 epochs, tiny conv net; a couple of minutes on 2 CPU cores.
# Run all tasks: python job_launcher.py --script bash_files/continual/digits/nnclr.sh
# val/acc1 is the online classifier (all 10 classes), trained on labelled batches of the whole
# training set (the reference CIFAR protocol, --online_eval_batch_size), so it measures the features.
# Optimiser and augmentations from bash_files/continual/cifar/nnclr.sh, heads scaled down.
python main_continual.py \
    --method nnclr \
    --dataset digits \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 10 \
    --backbone tiny \
    --accelerator cpu \
    --devices 1 \
    --precision 32 \
    --batch_size 32 \
    --online_eval_batch_size 64 \
    --num_workers 0 \
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.4 \
    --classifier_lr 0.125 \
    --weight_decay 1e-5 \
    --scheduler warmup_cosine \
    --warmup_epochs 1 \
    --crop_size 32 \
    --min_scale 0.5 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.0 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 0.2 \
    --proj_hidden_dim 256 \
    --output_dim 64 \
    --pred_hidden_dim 256 \
    --temperature 0.2 \
    --queue_size 512 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --name nnclr-digits
