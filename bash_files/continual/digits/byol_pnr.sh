#!/usr/bin/env bash
# CPU demo (not a paper number): BYOL + PNR (pnr_predictive distiller) on scikit-learn's digits,
# the recipe of byol_distill.sh with PNR's distiller and its pseudo-negative weight (0.5, as PNR's CIFAR-100 script).
# Run all tasks: python job_launcher.py --script bash_files/continual/digits/byol_pnr.sh
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method byol \
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
    --lr 1.0 \
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
    --solarization_prob 0.0 \
    --proj_hidden_dim 256 \
    --output_dim 64 \
    --pred_hidden_dim 256 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --distiller pnr_predictive \
    --distill_lamb 1.0 \
    --pnr_negative_lamb 0.5 \
    --distill_proj_hidden_dim 256 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --name byol-digits-pnr
