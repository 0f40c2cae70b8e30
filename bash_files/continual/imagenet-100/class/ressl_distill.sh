#!/usr/bin/env bash
# CaSSLe protocol, ImageNet-100 class-incremental, 5 tasks x 400 epochs, ResNet-18, 2 GPUs x 128:
# ReSSL + CaSSLe (relational distiller) (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100/class/ressl_distill.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
# Source: solo-learn bash_files/pretrain/imagenet-100/ressl.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# SGD lr 0.3, classifier lr 0.1, wd 1e-4, a strong first view (jitter 0.4/0.4/0.4/0.1, blur 0.5)
# and a weak second one (no jitter, no blur), no solarisation, heads 4096-256, tau 0.99 -> 1,
# T_q 0.1, T_k 0.04, queue 65536 (its default), momentum classifier; warmup 10 epochs from
# 0.003 (its defaults). Its script had no --sync_batchnorm; kept here as in every ImageNet-100
# script of this folder.
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method ressl \
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
    --optimizer sgd \
    --lr 0.3 \
    --classifier_lr 0.1 \
    --weight_decay 1e-4 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 224 \
    --min_scale 0.08 \
    --brightness 0.4 0.0 \
    --contrast 0.4 0.0 \
    --saturation 0.4 0.0 \
    --hue 0.1 0.0 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.5 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 4096 \
    --output_dim 256 \
    --queue_size 65536 \
    --temperature_q 0.1 \
    --temperature_k 0.04 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --momentum_classifier \
    --distiller relational \
    --distill_lamb 1.0 \
    --distill_proj_hidden_dim 2048 \
    --check_val_every_n_epoch 9999 \
    --name ressl-imagenet100-class-cassle \
    --project cassle \
    --wandb
