# EfficientNet-B2 with the weights of the MindSpore model zoo (mindspore-ai/models official/cv/Efficientnet/
# efficientnet-b2).  INFERENCE-ONLY: evaluates weights converted with tools/convert_weights.py (docs/conversion.md)
# using the zoo's evaluation preprocessing (src/dataset.py): short side to 280 (bilinear), centre crop 260, mean = std
# = 127.5.  The network is TF's (static "SAME" padding, BN eps 1e-3, decay 0.99 = momentum 0.01).
# Its schedule (imagenet_bs256) is NOT the EfficientNet recipe: do not train with it.
_base_ = ['./efficientnet-b2_8xb32_in1k.py']

model = dict(backbone=dict(padding='same', norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01)))

data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=280, edge='short', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=260),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
