#!/usr/bin/env bash
# CPU demo (not a paper number): Barlow Twins + POCON on scikit-learn's digits: per task 10 expert epochs, then
# 5 merge epochs (the 2:1 split of POCON's CIFAR-100 command), its optimiser (SGD momentum 0.9, weight decay 5e-4,
# no schedule; --lr 0.08 per 256 images = the code's 0.01 at this batch of 32) and its merge weights.
# Run all tasks: python job_launcher.py --script bash_files/continual/digits/barlow_pocon.sh
# Every task has both phases; task t > 0 starts from the checkpoint of task t-1 (its F_(t-1) and the expert's start).
python main_continual.py \
    --method barlow_twins \
    --dataset digits \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 15 \
    --backbone tiny \
    --accelerator cpu \
    --devices 1 \
    --precision 32 \
    --batch_size 32 \
    --online_eval_batch_size 64 \
    --num_workers 0 \
    --optimizer sgd \
    --momentum 0.9 \
    --lr 0.08 \
    --classifier_lr 0.125 \
    --weight_decay 5e-4 \
    --scheduler none \
    --crop_size 32 \
    --min_scale 0.5 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.4 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.0 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 256 \
    --output_dim 256 \
    --lamb 0.0051 \
    --scale_loss 0.025 \
    --pocon \
    --pocon_expert_epochs 10 \
    --pocon_adapt_lamb 1.0 \
    --pocon_retro_lamb 25.0 \
    --pocon_adapt_proj 3 \
    --pocon_retro_proj 0 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --name barlow-digits-pocon
