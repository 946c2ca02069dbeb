"""Training and inference throughput of an EfficientNet through the runner's compiled train/eval steps.

    GLOG_v=3 python benchmarks/bench_train.py --arch b0 --img-size 64 --batch-size 32 --steps 5

Reports the graph compile time (first call, including one step) separately from the steady-state images/s.
Random images and labels; no data loading.  Numbers on a shared machine are noisy: repeat and take the best.
"""
import argparse
import os
import time

os.environ.setdefault('GLOG_v', '3')

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import Tensor  # noqa: E402

from effnet_mm.engine.optim_wrapper import build_optim_wrapper  # noqa: E402
from effnet_mm.engine.randomness import StepMasks  # noqa: E402
from effnet_mm.engine.train_step import TrainStep, make_eval_step  # noqa: E402
from effnet_mm.registry import MODELS  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='b0')
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--steps', type=int, default=5, help='timed steps after the compile step')
    parser.add_argument('--mode', choices=['train', 'infer', 'both'], default='both')
    return parser.parse_args()


def build_model(arch: str, num_classes: int):
    from effnet_mm.variants import get_variant
    head_channels = get_variant(arch).head_channels
    return MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='EfficientNet', arch=arch, drop_path_rate=0.2),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=head_channels, dropout=0.2,
                  loss=dict(type='CrossEntropyLoss', label_smoothing=0.1))))


def timed(fn, steps: int):
    """``fn`` must block until its result is ready."""
    start = time.perf_counter()
    fn()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return compile_s, times


def main() -> None:
    args = parse_args()
    ms.set_seed(0)
    model = build_model(args.arch, args.num_classes)
    rng = np.random.default_rng(0)
    host_images = rng.integers(0, 256, (args.batch_size, 3, args.img_size, args.img_size), dtype=np.uint8)
    labels = rng.integers(0, args.num_classes, args.batch_size).astype(np.int32)
    images = Tensor(host_images)
    print(f'{args.arch} {args.img_size}px batch {args.batch_size}, {args.steps} timed steps')
    if args.mode in ('train', 'both'):
        wrapper = build_optim_wrapper(dict(optimizer=dict(type='RMSProp', lr=0.01, alpha=0.9, momentum=0.9, eps=1e-3,
                                                          weight_decay=1e-5),
                                           paramwise_cfg=dict(norm_decay_mult=0.0)), model)
        step = TrainStep(model, wrapper)
        masks = StepMasks.for_model(model, seed=0)
        model.set_train(True)

        def train(counter=[0]):  # noqa: B006 - as the runner calls it: host arrays, masks drawn per batch
            counter[0] += 1
            drop_masks, dropout_mask = masks.draw(0, np.arange(args.batch_size) + counter[0] * args.batch_size)
            step(host_images, labels, 0.01, drop_masks, dropout_mask)

        compile_s, times = timed(train, args.steps)
        best, median = min(times), float(np.median(times))
        print(f'train: compile+first step {compile_s:.1f} s; step median {median:.3f} s (best {best:.3f} s) '
              f'= {args.batch_size / median:.1f} img/s (best {args.batch_size / best:.1f})')
    if args.mode in ('infer', 'both'):
        model.set_train(False)
        forward = make_eval_step(model)
        compile_s, times = timed(lambda: forward(images).asnumpy(), args.steps)
        best, median = min(times), float(np.median(times))
        print(f'infer: compile+first call {compile_s:.1f} s; batch median {median:.3f} s (best {best:.3f} s) '
              f'= {args.batch_size / median:.1f} img/s (best {args.batch_size / best:.1f})')


if __name__ == '__main__':
    main()
