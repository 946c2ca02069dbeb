# EfficientNet-B0 with MindCV's `efficientnet_b0` weights (e.g. efficientnet_b0-f8d7aa2a-910v2.ckpt).
# INFERENCE-ONLY: evaluates weights converted with tools/convert_weights.py (docs/conversion.md) using MindCV's
# evaluation preprocessing (efficientnet_b0_ascend.yaml + create_transforms): short side to floor(224 / 0.875) = 256
# (bicubic), centre crop 224, ImageNet mean/std.  MindCV's B0-B4 use TF "SAME" padding but MindSpore's default BN:
# eps 1e-5, momentum 0.9 (0.1 in the PyTorch convention of norm_cfg).
# Its schedule (imagenet_bs256) is NOT the EfficientNet recipe: do not train with it.
_base_ = ['./efficientnet-b0_8xb32_in1k.py']

model = dict(backbone=dict(padding='same', norm_cfg=dict(type='BN', eps=1e-5, momentum=0.1)))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
