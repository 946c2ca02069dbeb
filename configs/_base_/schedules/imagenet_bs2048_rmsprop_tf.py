# The TF EfficientNet training recipe (tensorflow/tpu models/official/efficientnet, main.py + utils.py):
# RMSProp (decay 0.9, momentum 0.9, eps 1e-3 inside the sqrt), lr 0.016 per 256 images scaled linearly to the
# global batch, 5 warm-up epochs, x0.97 every 2.4 epochs (staircase), L2 1e-5, EMA 0.9999 of all weights, 350 epochs.
# Label smoothing 0.1 is part of the model head's loss.
# Batch: main.py's defaults are 2048 images per step for 218949 steps (~350 epochs, lr 0.128); the paper's initial
# lr 0.256 is the same 0.016-per-256 rule at 4096.  The file name follows main.py; auto_scale_lr makes the lr follow
# whatever global batch is actually used (batch_size x ranks), so both settings are this schedule.
optim_wrapper = dict(
    optimizer=dict(type='RMSProp', lr=0.016, alpha=0.9, momentum=0.9, eps=1e-3, weight_decay=1e-5),
    # TF adds the L2 term for every trainable variable whose name lacks 'batch_normalization': conv and dense
    # kernels AND biases (dense, SE convs); only BN gamma/beta are exempt.
    paramwise_cfg=dict(norm_decay_mult=0.0),
)

param_scheduler = [
    # TF warms up linearly from 0 over 5 epochs and counts the staircase decay from step 0.  The factors of the two
    # schedulers multiply, so in epochs 2.4-5 the warm-up LR is also decayed (x0.97 or x0.97^2), where TF uses the
    # warm-up value alone; from epoch 5 on the LR equals TF's.
    dict(type='LinearLR', start_factor=0.0, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='StepLR', step_size=2.4, gamma=0.97, by_epoch=True, begin=0, convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=350, val_interval=1)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [dict(type='EMAHook', momentum=1e-4, warmup=True)]

# lr above is per 256 images: the runner multiplies it by (batch_size x ranks) / 256 (the TF recipe scales it).
auto_scale_lr = dict(base_batch_size=256, enable=True)
