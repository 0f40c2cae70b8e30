#!/usr/bin/env bash
# CaSSLe protocol, ImageNet-100 class-incremental, 5 tasks x 400 epochs, ResNet-18, 2 GPUs x 128:
# DINO fine-tuning baseline (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100/class/dino.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# Source: solo-learn bash_files/pretrain/imagenet-100/dino.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# LARS lr 0.3, eta 0.02, clipped, bias/norm excluded, classifier lr 0.1, wd 1e-6, jitter
# 0.4/0.4/0.2/0.1, blur 1.0/0.1, solarisation 0.0/0.2, heads 2048-256, 4096 prototypes, tau
# 0.9995 -> 1; its DINO defaults (last-layer norm, no gradient clipping, last layer frozen 1
# epoch, temperatures 0.1 / 0.04 -> 0.07 over 50 epochs); warmup 10 epochs from 0.003.
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method dino \
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
    --accelerator gpu \
    --devices 2 \
    --strategy ddp \
    --sync_batchnorm \
    --precision auto \
    --batch_size 128 \
    --num_workers 5 \
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.3 \
    --classifier_lr 0.1 \
    --weight_decay 1e-6 \
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
    --output_dim 256 \
    --num_prototypes 4096 \
    --norm_last_layer true \
    --clip_grad 0 \
    --freeze_last_layer 1 \
    --student_temperature 0.1 \
    --teacher_temperature 0.07 \
    --warmup_teacher_temperature 0.04 \
    --warmup_teacher_temperature_epochs 50 \
    --base_tau_momentum 0.9995 \
    --final_tau_momentum 1.0 \
    --check_val_every_n_epoch 9999 \
    --name dino-imagenet100-class \
    --project cassle \
    --wandb
