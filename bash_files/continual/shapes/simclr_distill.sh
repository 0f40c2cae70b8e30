#!/usr/bin/env bash
# CPU demo (not a paper number): SimCLR + CaSSLe (contrastive distiller) on the procedural shapes set
# (cassle.data.shapes: ten shapes, random colour, position, size, background texture, noise), class-incremental,
# 5 tasks of 2 shapes x 10 epochs, 16x16 images, tiny conv net, one CPU thread.
# Write the images once (PNG files + lists, a few seconds): python -m cassle.data.demo data/shapes --set shapes --image_size 16
# Run all tasks: DATA_DIR=data/shapes python job_launcher.py --script bash_files/continual/shapes/simclr_distill.sh --eval
# `bash scripts/demo.sh` runs this and the fine-tuning baseline (simclr.sh) side by side and prints one table.
# SGD, not the CIFAR recipe's LARS: with LARS's clipped trust ratio the tiny net learns far more slowly here
# (benchmarks/RESULTS.md, "Learning on the shapes set"). The colour jitter covers the whole hue circle (--hue 0.5) and greyscale is frequent (0.5): the shapes' colours
# are drawn from the whole circle, so this is what makes colour a nuisance to the features (the CIFAR recipe's 0.1-0.2 does not).
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
python main_continual.py \
    --method simclr \
    --dataset custom \
    --data_dir $DATA_DIR \
    --no-validate_images \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 10 \
    --backbone tiny \
    --accelerator cpu \
    --devices 1 \
    --precision 32 \
    --batch_size 64 \
    --num_workers 0 \
    --optimizer sgd \
    --lr 0.4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
    --scheduler warmup_cosine \
    --warmup_epochs 1 \
    --crop_size 16 \
    --min_scale 0.5 \
    --brightness 0.8 \
    --contrast 0.8 \
    --saturation 0.8 \
    --hue 0.5 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.5 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 128 \
    --output_dim 128 \
    --temperature 0.2 \
    --distiller contrastive \
    --distill_lamb 1.0 \
    --distill_temperature 0.2 \
    --distill_proj_hidden_dim 128 \
    --check_val_every_n_epoch 10 \
    --log_every_n_steps 5 \
    --no_progress_bar \
    --name simclr-shapes-cassle
