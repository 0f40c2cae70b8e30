#!/usr/bin/env bash
# POCON (Gomez-Villa et al., WACV 2024) with Barlow Twins on CIFAR-100 class-incremental, 5 tasks, ResNet-18, 1 GPU:
# the public code's recipe (alviur/pocon_wacv2024, src/tests/wacv.py = its CIFAR-100 command, src/approach/
# copyOPscratch.py = the task loop, src/approach/sslModels.py = Barlow Twins + merge losses + optimiser)
# on this repo's 5-task split (the grid's protocol; wacv.py runs 10 tasks: add `-- --num_tasks 10`).
# Flags and their sources:
#   --pocon: expert phase then merge phase in every task (copyOPscratch.py Appr.train)
#   --max_epochs 750: 500 expert + 250 merge epochs (wacv.py --nepochs 500 --ret_nepochs 250; its task 0
#     runs 500 + 500, --task1_Retnepochs 500: one schedule for every task here, README differences)
#   --pocon_expert_epochs 500: wacv.py --nepochs 500
#   --pocon_adapt_lamb 1.0: lambda_exp, the code's --lambdaExp default (wacv.py leaves it)
#   --pocon_retro_lamb 25.0: lambda_ret, wacv.py --lambdapRet 25
#   --pocon_adapt_proj 3: g_exp = prediction_mlp(512, 256, 3), wacv.py --linearProj 3
#   --pocon_retro_proj 0: g_ret = prediction_mlp(512, 256, 0) (linear), the code's --linearProjRet default 0
#   --optimizer sgd --lr 0.01 --momentum 0.9 --weight_decay 5e-4 --scheduler none: sslModels.py
#     configure_optimizers (SGD, momentum 0.9, weight decay 5e-4, no scheduler) with wacv.py --lr 0.01 at
#     --batch_size 256 (this repo scales --lr by batch/256: 0.01 at 256)
#   --proj_hidden_dim 2048 --output_dim 2048: wacv.py --projectorArc 2048_2048_2048
#   --lamb 0.0051 --scale_loss 0.025: sslModels.py BarlowTwins.forward (0.025 * (on_diag + 0.0051 * off_diag))
#   augmentations: lightly SimCLRCollateFunction(input_size 32, gaussian_blur 0, cj_strength 0.5) of
#     copyOPscratch.py get_data_loaders = jitter 0.4/0.4/0.4/0.1 (0.8/0.8/0.8/0.2 x wacv.py --jitter_strength
#     0.5) with p 0.8, grey 0.2, crop scale 0.08-1, horizontal flip 0.5, no blur, no solarisation
#   --classifier_lr 0.1: this repo's online classifier (the code trains linear heads after each task instead)
# Run all tasks: DATA_DIR=/path/to/cifar100 python job_launcher.py --script bash_files/continual/cifar/barlow_pocon.sh
python main_continual.py \
    --method barlow_twins \
    --dataset cifar100 \
    --data_dir $DATA_DIR \
    --split_strategy class \
    --num_tasks 5 \
    --task_idx 0 \
    --max_epochs 750 \
    --backbone resnet18 \
    --accelerator gpu \
    --devices 1 \
    --precision auto \
    --batch_size 256 \
    --online_eval_batch_size 256 \
    --num_workers 5 \
    --optimizer sgd \
    --momentum 0.9 \
    --lr 0.01 \
    --classifier_lr 0.1 \
    --weight_decay 5e-4 \
    --scheduler none \
    --crop_size 32 \
    --min_scale 0.08 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.4 \
    --hue 0.1 \
    --color_jitter_prob 0.8 \
    --gray_scale_prob 0.2 \
    --horizontal_flip_prob 0.5 \
    --gaussian_prob 0.0 \
    --solarization_prob 0.0 \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --lamb 0.0051 \
    --scale_loss 0.025 \
    --pocon \
    --pocon_expert_epochs 500 \
    --pocon_adapt_lamb 1.0 \
    --pocon_retro_lamb 25.0 \
    --pocon_adapt_proj 3 \
    --pocon_retro_proj 0 \
    --name barlow-cifar100-pocon \
    --project cassle \
    --wandb
