# EfficientNet-L2 NoisyStudent at 475 px with ImageNet mean/std.
# INFERENCE-ONLY: evaluates converted TF checkpoints at the TF eval crop (475 px, crop_padding 32).
# Its schedule (imagenet_bs256: SGD, step LR) is NOT the EfficientNet recipe: training with it gives a few
# points less top-1 (mmpretrain#1455). There is no train-capable config for this variant.
# The 475 px NoisyStudent release of L2 (same weights layout as 800 px, fine-tuned at 475 px).
_base_ = [
    '../_base_/models/efficientnet_l2.py',
    '../_base_/datasets/imagenet_bs32_effnet.py',
    '../_base_/schedules/imagenet_bs256.py',
    '../_base_/default_runtime.py',
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetRandomCrop', scale=475, crop_padding=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetCenterCrop', crop_size=475, crop_padding=32),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
