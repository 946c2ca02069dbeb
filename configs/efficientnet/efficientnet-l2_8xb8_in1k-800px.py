# EfficientNet-L2 NoisyStudent at 800 px with ImageNet mean/std.
# INFERENCE-ONLY: evaluates converted TF checkpoints at the TF eval crop (800 px, crop_padding 32).
# Its schedule (imagenet_bs256: SGD, step LR) is NOT the EfficientNet recipe: training with it gives a few
# points less top-1 (mmpretrain#1455). There is no train-capable config for this variant.
# 480 M parameters at 800 px: 8 images per device.
_base_ = [
    '../_base_/models/efficientnet_l2.py',
    '../_base_/datasets/imagenet_bs32_effnet.py',
    '../_base_/schedules/imagenet_bs256.py',
    '../_base_/default_runtime.py',
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetRandomCrop', scale=800, crop_padding=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetCenterCrop', crop_size=800, crop_padding=32),
    dict(type='PackInputs'),
]

train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
