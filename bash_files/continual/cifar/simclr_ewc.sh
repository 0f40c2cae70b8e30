#!/usr/bin/env bash
# CaSSLe paper, CIFAR-100 class-incremental, 5 tasks x 500 epochs, ResNet-18, 1 GPU:
# SimCLR + EWC (Kirkpatrick et al., 2017).
# Strategy hyperparameters, all stated below (none left to a default), and their sources:
#   --ewc_lamb 0.1: largest stable value of a sweep {0.1, 1, 4, 20} on the CIFAR-100 CPU check (benchmarks/RESULTS.md); mammoth's seq-cifar10 e_lambda 10 (= 20 here) diverges with an SSL loss and LARS lr 0.3
#   --ewc_fisher_batches 0: for --ewc_fisher batch only: every batch of the finished task, one pass
#   --ewc_fisher sample: per-sample empirical Fisher, as Kirkpatrick et al. 2017 and aimagelab/mammoth models/ewc_on.py
#   --ewc_fisher_samples 1024: images of the finished task for the Fisher (mammoth: all; bounded here, cost in benchmarks/RESULTS.md)
#   --ewc_gamma 1.0: Fishers of all tasks summed (Kirkpatrick et al. 2017; mammoth seq-cifar10 ewc_on gamma 1.0)
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/simclr_ewc.sh
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
    --ewc_lamb 0.1 \
    --ewc_fisher_batches 0 \
    --ewc_fisher sample \
    --ewc_fisher_samples 1024 \
    --ewc_gamma 1.0 \
    --cl_strategy ewc \
    --name simclr-cifar100-ewc \
    --project cassle \
    --wandb
