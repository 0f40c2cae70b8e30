#!/usr/bin/env bash
# CaSSLe paper, DomainNet domain-incremental, 6 tasks x 200 epochs, ResNet-18, 4 GPUs x 64:
# MoCoV2+ fine-tuning baseline. Task order: real, quickdraw, painting, sketch, infograph, clipart.
# Run all tasks: DATA_DIR=/path/to/domainnet python job_launcher.py --script bash_files/continual/domainnet/mocov2plus.sh
# DATA_DIR holds {domain}_train.txt / {domain}_test.txt and the image folders they list.
# Plain SGD, cosine schedule without warmup, as the reference.
# Blur p 0.5 and no solarization: the reference's defaults, which its script relied on.
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method mocov2plus \
    --dataset domainnet \
    --dali \
    --data_dir $DATA_DIR \
    --split_strategy domain \
    --num_tasks 6 \
    --task_idx 0 \
    --max_epochs 200 \
    --backbone resnet18 \
    --accelerator gpu \
    --devices 4 \
    --strategy ddp \
    --sync_batchnorm \
    --precision auto \
    --batch_size 64 \
    --num_workers 5 \
    --optimizer sgd \
    --lr 0.4 \
    --classifier_lr 0.3 \
    --weight_decay 1e-4 \
    --scheduler cosine \
    --warmup_epochs 0 \
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
    --output_dim 128 \
    --temperature 0.2 \
    --queue_size 65536 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 0.999 \
    --momentum_classifier \
    --check_val_every_n_epoch 9999 \
    --name mocov2plus-domainnet \
    --project cassle \
    --wandb
