#!/usr/bin/env bash
# CPU demo (not a paper number): Barlow Twins + CaSSLe (decorrelative distiller), domain-incremental: scikit-learn's digits
# drawn in 4 fixed styles (plain, inverted, colour, noisy), one task per style x 10 epochs, tiny conv net.
# Write the images (PNG files, a domain tree + lists) once: python -m cassle.data.demo data/digits-domains
# Run all tasks: DATA_DIR=data/digits-domains python job_launcher.py --script bash_files/continual/digits-domains/barlow_distill.sh --eval
# Also the template for your own data with domains: append `-- --data_dir DIR --domains d1 d2 ...` (the task
# order; --num_tasks follows it) and e.g. `--backbone resnet18 --crop_size 64 --accelerator gpu`.
# val/acc1 is the online classifier trained on labelled batches of every domain (--online_eval_batch_size).
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method barlow_twins \
    --dataset custom \
    --data_dir $DATA_DIR \
    --split_strategy domain \
    --domains plain inverted colour noisy \
    --task_idx 0 \
    --max_epochs 10 \
    --backbone tiny \
    --accelerator cpu \
    --devices 1 \
    --precision 32 \
    --batch_size 32 \
    --online_eval_batch_size 64 \
    --num_workers 2 \
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.3 \
    --classifier_lr 1.0 \
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
    --distiller decorrelative \
    --distill_lamb 1.0 \
    --distill_barlow_lamb 0.005 \
    --distill_scale_loss 0.1 \
    --distill_proj_hidden_dim 256 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --name barlow-digits-domains-cassle
