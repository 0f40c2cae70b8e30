#!/usr/bin/env bash
# CaSSLe paper, DomainNet domain-incremental, 6 tasks x 200 epochs, ResNet-18, 4 GPUs x 64:
# SwAV fine-tuning baseline. Task order: real, quickdraw, painting, sketch, infograph, clipart.
# Run all tasks: DATA_DIR=/path/to/domainnet python job_launcher.py --script bash_files/continual/domainnet/swav.sh
# DATA_DIR holds {domain}_train.txt / {domain}_test.txt and the image folders they list.
# Blur p 0.5 and no solarization: the reference's defaults, which its script relied on.
# Queue from epoch 50 and prototypes frozen for 3 epochs, as the reference's fine-tuning script
# (its SwAV + CaSSLe script uses 100 and 5).
# The paper's accuracy comes from offline linear evaluation after the last task; the online classifier
# only monitors; as in the reference it is not validated during pretraining (--check_val_every_n_epoch
# 9999: lower it to watch it, each validation pass costs about a tenth of a training epoch).
python main_continual.py \
    --method swav \
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
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.8 \
    --min_lr 6e-4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-6 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
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
    --num_prototypes 3000 \
    --temperature 0.1 \
    --sk_epsilon 0.05 \
    --sk_iters 3 \
    --queue_size 3840 \
    --epoch_queue_starts 50 \
    --freeze_prototypes_epochs 3 \
    --check_val_every_n_epoch 9999 \
    --name swav-domainnet \
    --project cassle \
    --wandb
