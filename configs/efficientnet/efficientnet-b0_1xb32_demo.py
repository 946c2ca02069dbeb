# EfficientNet-B0 trained from scratch on the embedded demo dataset (10 shape classes, generated into
# data/effnet_demo on first use) at 64 px on one CPU process:
#     python tools/train.py configs/efficientnet/efficientnet-b0_1xb32_demo.py
# The run is ~1100 iterations instead of TF's 350 ImageNet epochs, so the recipe differs from the TF one:
# - AdamW (lr 3e-3, decoupled weight decay 0.05, none on BN/bias). TF-style RMSProp diverged this early in
#   training and SGD (lr 0.05, Nesterov) stayed near chance for several epochs: EfficientNet from scratch is slow to
#   start, and the TF classifier init (uniform +-1/sqrt(10) for 10 classes) starts from large logits.
# - one warm-up epoch, then cosine decay; drop-connect 0.1 instead of 0.2 (small data, short run);
# - EMA over ~100 iterations instead of TF's 0.9999 (which averages over ~10k iterations).
_base_ = [
    '../_base_/models/efficientnet_b0.py',
    '../_base_/datasets/demo_bs32.py',
    '../_base_/schedules/imagenet_bs2048_rmsprop_tf.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(drop_path_rate=0.1), head=dict(num_classes=10))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=3e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=0.01, by_epoch=True, begin=1, end=12, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=12, val_interval=1)
auto_scale_lr = dict(base_batch_size=256, enable=False)

custom_hooks = [dict(type='EMAHook', momentum=0.01, warmup=True)]

default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
