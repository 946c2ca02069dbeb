# mmpretrain's ResNet-style SGD schedule (what mmpretrain's EfficientNet configs inherit; not the TF recipe).
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0001))

param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# Set enable=True (or pass --auto-scale-lr) to scale lr by (batch_size x ranks) / 256.
auto_scale_lr = dict(base_batch_size=256, enable=False)
