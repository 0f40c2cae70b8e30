#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# SimCLR + Osiris-R (Zhang et al., CoLLAs 2024): a second projector h (loaded from g at task 1) for a
# cross-task contrastive loss (current vs buffer images) and a past-task NT-Xent on the buffer views,
# weighted 0.5 beside the method's own loss. The recipe is CaSSLe's (this script = simclr.sh + the
# strategy), not the Osiris code's (SGD lr 0.03, 200 epochs per task, GroupNorm + Mish ResNet-18):
# README, differences.
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --buffer_size 500: SkrighYZ/Osiris README, Split-CIFAR-100 commands, --buffer_size 500 (reservoir, models/buffer.py)
#   --replay_batch_size 192: SkrighYZ/Osiris README --p 0.75, buffer images = 0.75 x the batch (256; models/continual_model.py recall)
#   --osiris_variant r: SkrighYZ/Osiris README, the Osiris-R command (--model osiris-r); d: Osiris-D
#   --osiris_lamb 0.5: SkrighYZ/Osiris models/contrastive.py Osiris.forward, loss1 + 0.5 * (loss2 + loss3)
#   --osiris_temperature 0.1: SkrighYZ/Osiris models/contrastive.py, NT_Xent / Cross_NT_Xent default temperature 0.1
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/simclr_osiris.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
python main_continual.py \
    --method simclr \
    --dataset cifar100 \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 500 \
    --backbone resnet18 \
    --accelerator gpu \
    --devices 1 \
    --precision auto \
    --batch_size 256 \
    --online_eval_batch_size 256 \
    --num_workers 5 \
    --optimizer lars \
    --eta_lars 0.02 \
    --grad_clip_lars \
    --exclude_bias_n_norm \
    --lr 0.4 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.8 \
    --contrast 0.8 \
    --saturation 0.8 \
    --hue 0.2 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 2048 \
    --output_dim 256 \
    --temperature 0.2 \
    --buffer_size 500 \
    --replay_batch_size 192 \
    --osiris_variant r \
    --osiris_lamb 0.5 \
    --osiris_temperature 0.1 \
    --cl_strategy osiris \
    --name simclr-cifar100-osiris \
    --project cassle \
    --wandb
