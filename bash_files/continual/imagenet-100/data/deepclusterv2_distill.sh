#!/usr/bin/env bash
# CaSSLe protocol, ImageNet-100 data-incremental, 5 tasks x 400 epochs, ResNet-18, 2 GPUs x 128:
# DeepClusterV2 + CaSSLe (knowledge distiller) (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100/data/deepclusterv2_distill.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
# Source: solo-learn bash_files/pretrain/imagenet-100/deepclusterv2.sh (Nov 2021, commit 95886b6, the code CaSSLe forked):
# LARS lr 0.6, eta 0.02, clipped, bias/norm excluded, min lr 6e-4, 11 warmup epochs from 0,
# classifier lr 0.1, wd 1e-6, jitter 0.8/0.8/0.8/0.2, two symmetric views with its defaults
# (blur p 0.5, no solarisation), heads 2048-128, 3 x 3000 prototypes, T 0.1, 10 k-means
# iterations (its defaults); its --encode_indexes_into_labels is not needed here (the DALI
# loader yields the dataset indexes).
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method deepclusterv2 \
    --dataset imagenet100 \
    --dali \
    --data_dir $DATA_DIR \
    --train_dir train \
    --val_dir val \
    --split_strategy data \
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
    --lr 0.6 \
    --classifier_lr 0.1 \
    --weight_decay 1e-6 \
    --scheduler warmup_cosine \
    --warmup_epochs 11 \
    --warmup_start_lr 0.0 \
    --min_lr 6e-4 \
    --crop_size 224 \
    --min_scale 0.08 \
    --brightness 0.8 \
    --contrast 0.8 \
    --saturation 0.8 \
    --hue 0.2 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.5 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 2048 \
    --output_dim 128 \
    --num_prototypes 3000 3000 3000 \
    --temperature 0.1 \
    --kmeans_iters 10 \
    --distiller knowledge \
    --distill_lamb 1.0 \
    --distill_temperature 0.1 \
    --distill_proj_hidden_dim 2048 \
    --check_val_every_n_epoch 9999 \
    --name deepclusterv2-imagenet100-data-cassle \
    --project cassle \
    --wandb
