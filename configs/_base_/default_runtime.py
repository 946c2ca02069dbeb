# Runtime defaults of every effnet_mm config (mmpretrain's default_runtime on the MindSpore runner).
default_scope = 'effnet_mm'

default_hooks = dict(
    # Measures data_time/time of every iteration.
    timer=dict(type='IterTimerHook'),
    # Prints/records training scalars every `interval` iterations (and the last iteration of each epoch).
    logger=dict(type='LoggerHook', interval=100),
    # Writes the scheduled learning rate before each iteration.
    param_scheduler=dict(type='ParamSchedulerHook'),
    # epoch_N.ckpt every epoch, last_checkpoint pointer, best checkpoint by validation top-1.
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='accuracy/top1', rule='greater'),
    # Tells the train loader the epoch: the data order is a function of (seed, epoch).
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# device_target: 'CPU' / 'GPU' / 'Ascend' (None: the installed MindSpore's default; tools' --device overrides it).
# cpu_threads: MindSpore CPU kernel threads (None keeps MindSpore's default).
env_cfg = dict(device_target=None, cpu_threads=None)

vis_backends = [dict(type='LocalVisBackend')]

log_level = 'INFO'
load_from = None
resume = False
launcher = 'none'

# The same seed on every rank; data order, augmentation and dropout masks derive from it (exact resume).
randomness = dict(seed=0)
