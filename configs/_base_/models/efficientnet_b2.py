# EfficientNet-B2 classifier (260 px native). Values come from effnet_mm/variants.py;
# tests/test_configs_models.py keeps this file in sync with it.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='EfficientNet', arch='b2', drop_path_rate=0.2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1408,
        dropout=0.3,
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1, loss_weight=1.0),
        topk=(1, 5)))
