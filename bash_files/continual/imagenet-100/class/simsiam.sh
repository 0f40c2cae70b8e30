#!/usr/bin/env bash
# CaSSLe protocol, ImageNet-100 class-incremental, 5 tasks x 400 epochs, ResNet-18, 2 GPUs x 128:
# SimSiam fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100/class/simsiam.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# Source: solo-learn bash_files/pretrain/imagenet-100/simsiam.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# SGD lr 0.5, classifier lr 0.1, wd 1e-5, zero-init residual, jitter 0.4/0.4/0.4/0.1, two
# symmetric views with its defaults (blur p 0.5, no solarisation), heads 2048-2048 / 512;
# warmup 10 epochs from 0.003 (its defaults).
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method simsiam \
    --dataset imagenet100 \
    --dali \
    --data_dir $DATA_DIR \
    --train_dir train \
    --val_dir val \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 400 \
    --backbone resnet18 \
    --zero_init_residual \
    --accelerator gpu \
    --devices 2 \
    --strategy ddp \
    --sync_batchnorm \
    --precision auto \
    --batch_size 128 \
    --num_workers 5 \
    --optimizer sgd \
    --lr 0.5 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 224 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.4 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.5 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --pred_hidden_dim 512 \
    --check_val_every_n_epoch 9999 \
    --name simsiam-imagenet100-class \
    --project cassle \
    --wandb
