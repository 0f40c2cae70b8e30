#!/usr/bin/env bash
# Your own image folder, class-incremental, 5 tasks: Barlow Twins fine-tuning with the ImageNet-100 recipe
# (ResNet-18, 400 epochs per task, crop 224) on one device.
# DATA_DIR holds <class>/... image folders (or lists written by `python -m cassle.data.prepare DATA_DIR`);
# the number of classes comes from the data and must divide into --num_tasks.
# Run all tasks: DATA_DIR=/path/to/images python job_launcher.py --script bash_files/continual/custom/barlow.sh --eval
# Override after `--`, e.g. `-- --num_tasks 7 --crop_size 64 --max_epochs 100 --devices 2 --strategy ddp`.
# Data with domains (<domain>/<class>/...): see bash_files/continual/digits-domains/.
python main_continual.py \
    --method barlow_twins \
    --dataset custom \
    --dali \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 400 \
    --backbone resnet18 \
    --accelerator auto \
    --devices 1 \
    --precision auto \
    --batch_size 128 \
    --num_workers 5 \
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-4 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 224 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 1.0 0.1 \
    --solarization_prob 0.0 0.2 \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --lamb 0.005 \
    --scale_loss 0.1 \
    --check_val_every_n_epoch 10 \
    --name barlow-custom-class \
    --project cassle
