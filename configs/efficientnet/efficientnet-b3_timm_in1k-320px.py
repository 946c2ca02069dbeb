# EfficientNet-B3 with the weights of timm's own `efficientnet_b3` training (`efficientnet_b3.ra2_in1k`), evaluated
# as timm's validate.py does by default: at its test size 320 with test crop_pct 1.0 (short side to 320 bicubic,
# centre crop 320), ImageNet mean/std.  Symmetric padding (k // 2), BN eps 1e-5.
# INFERENCE-ONLY: evaluates weights converted with tools/convert_weights.py (docs/conversion.md).
# Its schedule (imagenet_bs256) is NOT the EfficientNet recipe: do not train with it.
_base_ = ['./efficientnet-b3_8xb32_in1k.py']

model = dict(backbone=dict(padding='symmetric', norm_cfg=dict(type='BN', eps=1e-5, momentum=0.1)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetRandomCrop', scale=320),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=320, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=320),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
