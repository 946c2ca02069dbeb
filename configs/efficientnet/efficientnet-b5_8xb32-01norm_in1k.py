# EfficientNet-B5 at 456 px with AdvProp ("01norm") normalisation: the TF advprop/ checkpoints.
# INFERENCE-ONLY: evaluates converted TF checkpoints at the TF eval crop (456 px, crop_padding 32).
# Its schedule (imagenet_bs256: SGD, step LR) is NOT the EfficientNet recipe: training with it gives a few
# points less top-1 (mmpretrain#1455). Train with efficientnet-b5_8xb32-aa_in1k.py instead.
_base_ = [
    '../_base_/models/efficientnet_b5.py',
    '../_base_/datasets/imagenet_bs32_effnet.py',
    '../_base_/schedules/imagenet_bs256.py',
    '../_base_/default_runtime.py',
]

# AdvProp checkpoints expect x * 2 / 255 - 1 (TF --advprop_preprocessing): mean = std = 127.5 (RGB).
data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetRandomCrop', scale=456, crop_padding=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetCenterCrop', crop_size=456, crop_padding=32),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
