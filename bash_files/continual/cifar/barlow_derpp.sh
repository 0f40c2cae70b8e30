#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# Barlow Twins + DER++ (Buzzega et al., 2020).
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --buffer_size 500: aimagelab/mammoth models/config/derpp.yaml, seq-cifar100, buffer 500
#   --replay_batch_size 256: the batch size (mammoth's minibatch_size default)
#   --derpp_alpha 0.3: aimagelab/mammoth models/config/derpp.yaml, seq-cifar100, buffer 500
#   --derpp_beta 0.5: aimagelab/mammoth models/config/derpp.yaml, seq-cifar100, buffer 500
#   --der_target backbone: the DER term on backbone features, as DER here (divyam3897/UCL models/der.py, the SSL DER)
#   --der_views ssl: replayed images get the method's SSL augmentation (UCL: crop + flip, --der_views ucl)
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/barlow_derpp.sh
# DATA_DIR holds torchvision's cifar-100-python/ (or train_*.npz + test.npz).
python main_continual.py \
    --method barlow_twins \
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
    --lr 0.3 \
    --classifier_lr 0.1 \
    --weight_decay 1e-4 \
    --scheduler warmup_cosine \
    --warmup_epochs 10 \
    --warmup_start_lr 0.003 \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 0.2 \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --lamb 0.005 \
    --scale_loss 0.1 \
    --buffer_size 500 \
    --replay_batch_size 256 \
    --derpp_alpha 0.3 \
    --derpp_beta 0.5 \
    --der_target backbone \
    --der_views ssl \
    --cl_strategy derpp \
    --name barlow-cifar100-derpp \
    --project cassle \
    --wandb
