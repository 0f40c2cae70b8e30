#!/usr/bin/env bash
# CaSSLe protocol, ImageNet-100 data-incremental, 5 tasks x 400 epochs, ResNet-18, 2 GPUs x 128:
# MoCo v3 + CaSSLe (contrastive distiller) (not in the paper; issue 22).
# Run all tasks: DATA_DIR=/path/to/imagenet-100 python job_launcher.py --script bash_files/continual/imagenet-100/data/mocov3_distill.sh
# DATA_DIR holds train/ and val/ with one folder per class.
# The launcher drops the distiller flags for task 0 and gives task t the checkpoint of task t-1.
# Source: solo-learn scripts/pretrain/imagenet-100/mocov3.yaml with augmentations/asymmetric.yaml
# (its Nov 2021 scripts had no ImageNet-100 MoCo v3): LARS lr 0.3, eta 0.02, clipped, bias/norm
# excluded, classifier lr 0.3, wd 1e-6, jitter 0.4/0.4/0.2/0.1, blur 1.0/0.1, solarisation
# 0.0/0.2, heads 4096-256 / 4096, T 0.2, tau 0.99 -> 1; warmup 10 epochs from 0.003 as the
# other ImageNet-100 scripts of this folder.
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method mocov3 \
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
    --lr 0.3 \
    --classifier_lr 0.3 \
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
    --proj_hidden_dim 4096 \
    --output_dim 256 \
    --pred_hidden_dim 4096 \
    --temperature 0.2 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --distiller contrastive \
    --distill_lamb 1.0 \
    --distill_temperature 0.2 \
    --distill_proj_hidden_dim 2048 \
    --check_val_every_n_epoch 9999 \
    --name mocov3-imagenet100-data-cassle \
    --project cassle \
    --wandb
