# EfficientNet-B6 at 528 px, TRAIN-CAPABLE: the TF recipe that produced the ckptsaug/ checkpoints
# (RMSProp, warmup, 0.97 every 2.4 epochs, EMA 0.9999, label smoothing 0.1, drop-connect 0.2, AutoAugment v0).
# 8 x 32 = 256 images per step; the schedule scales its learning rate to the global batch (auto_scale_lr).
_base_ = [
    '../_base_/models/efficientnet_b6.py',
    '../_base_/datasets/imagenet_bs32_effnet.py',
    '../_base_/schedules/imagenet_bs2048_rmsprop_tf.py',
    '../_base_/default_runtime.py',
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetRandomCrop', scale=528, crop_padding=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # TF policy_v0 (fill 128), after crop and flip, on uint8: the recipe of the '-aa' checkpoints.
    dict(type='AutoAugment', policies='v0'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetCenterCrop', crop_size=528, crop_padding=32),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
