"""A tiny network, an in-memory loader following the Loaders contract, and a runner over them: fast runner tests."""
import numpy as np
from mindspore import nn

from effnet_mm.engine import Runner
from effnet_mm.registry import MODELS

NUM_CLASSES = 3


@MODELS.register_module(force=True)
class TinyTestBackbone(nn.Cell):
    """Conv-BN-ReLU and a drop-path residual: BN statistics and random kernels like EfficientNet's."""

    def __init__(self, drop_prob=0.3):
        super().__init__()
        self.stem = nn.SequentialCell([nn.Conv2d(3, 8, 3, stride=2, pad_mode='same'), nn.BatchNorm2d(8), nn.ReLU()])
        self.branch = nn.Conv2d(8, 8, 3, pad_mode='same')
        self.drop_path = MODELS.build(dict(type='DropPath', drop_prob=drop_prob))

    def construct(self, x, drop_masks=None):
        x = self.stem(x)
        keep = None if drop_masks is None else drop_masks[0]
        return (x + self.drop_path(self.branch(x), keep), )

    @property
    def drop_path_probs(self):
        return (self.drop_path.drop_prob, ) if self.drop_path.drop_prob > 0 else ()


@MODELS.register_module(force=True)
class NormFreeTestBackbone(TinyTestBackbone):
    """TinyTestBackbone without BatchNorm: micro-batches and whole batches compute the same gradients."""

    def __init__(self, drop_prob=0.3):
        super().__init__(drop_prob)
        self.stem = nn.SequentialCell([nn.Conv2d(3, 8, 3, stride=2, pad_mode='same', has_bias=True), nn.ReLU()])


def tiny_model(num_classes=NUM_CLASSES, drop=0.3, backbone='TinyTestBackbone'):
    return dict(type='ImageClassifier', backbone=dict(type=backbone, drop_prob=drop),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=8, dropout=drop,
                          loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))


class ColourLoader:
    """Images whose brightest channel is the class; the order is a function of (seed, epoch) only."""

    def __init__(self, num, batch_size, shuffle, seed=0, size=8):
        rng = np.random.default_rng(1234 + num)
        self.labels = np.arange(num) % NUM_CLASSES
        images = rng.integers(0, 120, size=(num, 3, size, size))
        images[np.arange(num), self.labels] += 100
        self.images = images.astype(np.uint8)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.dataset = type('DS', (), {'metainfo': {'classes': [str(i) for i in range(NUM_CLASSES)]}})()

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def __iter__(self):
        order = np.arange(len(self.labels))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield {'inputs': self.images[idx], 'gt_label': self.labels[idx].astype(np.int32),
                   'sample_idx': idx.astype(np.int64)}


def make_runner(work_dir, max_epochs=3, ema=True, model=None, **kwargs):
    cfg = dict(
        model=model or tiny_model(),
        work_dir=str(work_dir),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[110, 110, 110], std=[50, 50, 50], to_rgb=False),
        train_dataloader=ColourLoader(48, 8, shuffle=True),
        val_dataloader=ColourLoader(30, 8, shuffle=False),
        test_dataloader=ColourLoader(30, 8, shuffle=False),
        val_evaluator=dict(type='Accuracy', topk=(1, 2)),
        test_evaluator=dict(type='Accuracy', topk=(1, 2)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        test_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='RMSProp', lr=0.01, alpha=0.9, momentum=0.9, eps=1e-3,
                                          weight_decay=1e-5),
                           paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0), clip_grad=dict(max_norm=5.0)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
                              convert_to_iter_based=True),
                         dict(type='StepLR', step_size=1.5, gamma=0.5, by_epoch=True, begin=1,
                              convert_to_iter_based=True)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                                           save_best='accuracy/top1')),
        custom_hooks=[dict(type='EMAHook', momentum=0.1)] if ema else [],
        randomness=dict(seed=7),
    )
    cfg.update(kwargs)
    return Runner(**cfg)
