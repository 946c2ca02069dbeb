# EfficientNet-B0 trained from scratch on the embedded demo dataset (10 shape classes, generated into
# data/effnet_demo on first use) at 64 px on one CPU process:
#     python tools/train.py configs/efficientnet/efficientnet-b0_1xb32_demo.py
# The TF recipe's optimizer (RMSProp, eps 1e-3, no decay on BN/bias) with a short warm-up + cosine schedule and a
# higher LR, because the run is a few hundred iterations long instead of 350 epochs.
_base_ = [
    '../_base_/models/efficientnet_b0.py',
    '../_base_/datasets/demo_bs32.py',
    '../_base_/schedules/imagenet_bs2048_rmsprop_tf.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=10))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='SGD', lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=0.01, by_epoch=True, begin=1, end=5, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
auto_scale_lr = dict(base_batch_size=256, enable=False)

# EMA with a shorter horizon than TF's 0.9999: the whole run is ~470 iterations.
custom_hooks = [dict(type='EMAHook', momentum=0.01, warmup=True)]

default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
