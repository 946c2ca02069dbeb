# EfficientNet-B1 with MindCV's `efficientnet_b1` weights (e.g. efficientnet_b1-f8c6b13f.ckpt).
# INFERENCE-ONLY: evaluates weights converted with tools/convert_weights.py (docs/conversion.md) using MindCV's
# evaluation preprocessing (efficientnet_b1_ascend.yaml: image_resize 240, crop_pct 0.875): short side to
# floor(240 / 0.875) = 274 (bicubic), centre crop 240, ImageNet mean/std.  TF "SAME" padding, MindSpore's default
# BN: eps 1e-5, momentum 0.9 (0.1 in the PyTorch convention of norm_cfg).
# Its schedule (imagenet_bs256) is NOT the EfficientNet recipe: do not train with it.
_base_ = ['./efficientnet-b1_8xb32_in1k.py']

model = dict(backbone=dict(padding='same', norm_cfg=dict(type='BN', eps=1e-5, momentum=0.1)))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=274, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=240),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
