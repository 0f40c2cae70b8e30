#!/usr/bin/env bash
# CPU demo (not a paper number): ReSSL + CaSSLe (relational distiller) on scikit-learn's digits (bundled, no download),
# class-incremental, 5 tasks of 2 classes x 10 epochs, tiny conv net; a couple of minutes on 2 CPU cores.
# Run all tasks: python job_launcher.py --script bash_files/continual/digits/ressl_distill.sh
# val/acc1 is the online classifier (all 10 classes), trained on labelled batches of the whole
# training set (the reference CIFAR protocol, --online_eval_batch_size), so it measures the features.
# Optimiser and augmentations from bash_files/continual/cifar/ressl.sh, heads scaled down.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method ressl \
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
    --optimizer sgd \
    --lr 0.05 \
    --classifier_lr 0.125 \
    --weight_decay 1e-4 \
    --scheduler warmup_cosine \
    --warmup_epochs 1 \
    --crop_size 32 \
    --min_scale 0.5 \
    --brightness 0.4 0.0 \
    --contrast 0.4 0.0 \
    --saturation 0.2 0.0 \
    --hue 0.1 0.0 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.0 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 256 \
    --output_dim 64 \
    --queue_size 512 \
    --temperature_q 0.1 \
    --temperature_k 0.04 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --distiller relational \
    --distill_lamb 1.0 \
    --distill_proj_hidden_dim 256 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --name ressl-digits-cassle
