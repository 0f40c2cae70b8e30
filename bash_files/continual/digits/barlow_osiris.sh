#!/usr/bin/env bash
# CPU demo (not a paper number): Barlow Twins + Osiris-R (--cl_strategy osiris) on scikit-learn's digits (bundled, no download),
# class-incremental, 5 tasks of 2 classes x 10 epochs, tiny conv net; a couple of minutes on 2 CPU cores.
# Run all tasks: python job_launcher.py --script bash_files/continual/digits/barlow_osiris.sh
# val/acc1 is the online classifier (all 10 classes), trained on labelled batches of the whole
# training set (the reference CIFAR protocol, --online_eval_batch_size), so it measures the features.
# Buffer of 200 images: the first task has ~290 (the CIFAR scripts use the paper's 500); 24 buffer images
# per step = 0.75 x the batch of 32 (the paper's --p 0.75).
python main_continual.py \
    --method barlow_twins \
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
    --lr 0.3 \
    --classifier_lr 0.125 \
    --weight_decay 1e-4 \
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
    --solarization_prob 0.0 \
    --proj_hidden_dim 256 \
    --output_dim 256 \
    --lamb 0.005 \
    --scale_loss 0.1 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --buffer_size 200 \
    --replay_batch_size 24 \
    --cl_strategy osiris \
    --name barlow-digits-osiris
