# EfficientNet-B0 with the weights of timm's own `efficientnet_b0` training (`efficientnet_b0.ra_in1k`).
# INFERENCE-ONLY: evaluates weights converted with tools/convert_weights.py (docs/conversion.md) using timm's
# evaluation preprocessing as closely as OpenCV can: short side to floor(224 / 0.875) = 256 (bicubic), centre crop
# 224, ImageNet mean/std.  timm's own trainings use PyTorch's symmetric padding (k // 2) and BN eps 1e-5.
# Its schedule (imagenet_bs256) is NOT the EfficientNet recipe: do not train with it.
_base_ = ['./efficientnet-b0_8xb32_in1k.py']

model = dict(backbone=dict(padding='symmetric', norm_cfg=dict(type='BN', eps=1e-5, momentum=0.1)))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
