"""Images/s of the EfficientNet training pipeline (decode + crop + flip [+ AutoAugment]).

Two data sets: the embedded demo dataset (72x72 PNG, 64 px output) and a synthetic ImageNet-sized JPEG set
(smooth random images of typical ImageNet sizes, 224 px output) written to a temporary folder.  The pipelines are
the ``train_pipeline`` of ``configs/_base_/datasets/demo_bs32.py`` and ``imagenet_bs32_effnet.py``.  The pipeline is
timed in this process (one core), and optionally (``--loader``) through ``build_dataloader`` with
``--num-workers`` parallel workers, batching included.

Run from a scratch directory (MindSpore writes into the CWD), e.g.::

    cd /tmp && GLOG_v=3 python /path/to/benchmarks/bench_data.py --num-images 200 --loader --num-workers 2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Dict, List, Optional

import cv2
import numpy as np
from mmengine.config import Config

from effnet_mm.datasets import CustomDataset, DemoDataset, build_dataloader
from effnet_mm.datasets.transforms._rng import sample_rng

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'configs', '_base_', 'datasets')
#: (height, width) of the synthetic JPEGs: a spread of common ImageNet shapes.
IMAGENET_SHAPES = ((375, 500), (500, 375), (333, 500), (500, 500), (480, 640), (366, 500))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--demo-root', default='data/effnet_demo', help='demo dataset folder (made if missing)')
    parser.add_argument('--num-images', type=int, default=200, help='images timed per configuration')
    parser.add_argument('--loader', action='store_true', help='also time build_dataloader (MindSpore)')
    parser.add_argument('--num-workers', type=int, default=2, help='loader workers (with --loader)')
    parser.add_argument('--multiprocessing', action='store_true', help='loader workers are processes')
    parser.add_argument('--batch-size', type=int, default=32, help='loader batch size (with --loader)')
    return parser.parse_args(argv)


def write_synthetic_imagenet(root: str, num_images: int, seed: int = 0) -> None:
    """JPEGs (quality 90) of smooth random content in ImageNet-like sizes, as ``root/train/synthetic/*.JPEG``."""
    folder = os.path.join(root, 'train', 'synthetic')
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        h, w = IMAGENET_SHAPES[i % len(IMAGENET_SHAPES)]
        # upsampled coarse noise plus fine noise: JPEG sizes and decode cost close to natural photos
        coarse = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, f'{i:05d}.JPEG'), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def train_pipeline(config: str, autoaugment: bool) -> List[dict]:
    """The ``train_pipeline`` of a dataset config fragment, with AutoAugment v0 inserted before ``PackInputs``."""
    pipeline = [dict(t) for t in Config.fromfile(os.path.join(CONFIG_DIR, config)).train_pipeline]
    if autoaugment:
        pipeline.insert(len(pipeline) - 1, dict(type='AutoAugment', policies='v0'))
    return pipeline


def time_pipeline(dataset, num_images: int) -> float:
    """Images/s of ``dataset.prepare_data`` in this process."""
    n = min(num_images, len(dataset))
    dataset.prepare_data(0, sample_rng(0, 0, 0))  # warm the file cache and OpenCV
    start = time.perf_counter()
    for idx in range(n):
        dataset.prepare_data(idx, sample_rng(0, 0, idx))
    return n / (time.perf_counter() - start)


def time_loader(dataset, args: argparse.Namespace) -> float:
    """Images/s of one epoch of ``build_dataloader`` (pipeline start-up included, MindSpore import excluded)."""
    import mindspore.dataset  # noqa: F401 - the first import costs seconds; keep it out of the timing
    loader = build_dataloader(dict(batch_size=args.batch_size, num_workers=args.num_workers,
                                   multiprocessing=args.multiprocessing,
                                   sampler=dict(type='DefaultSampler', shuffle=True), dataset=dataset))
    start = time.perf_counter()
    n = sum(len(batch['sample_idx']) for batch in loader)
    return n / (time.perf_counter() - start)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    rows: List[Dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_imagenet(tmp, args.num_images)
        for data, scale, config in (('demo 72px PNG', 64, 'demo_bs32.py'),
                                    ('synthetic ImageNet JPEG', 224, 'imagenet_bs32_effnet.py')):
            for aa in (False, True):
                pipeline = train_pipeline(config, aa)
                if data.startswith('demo'):
                    dataset = DemoDataset(data_root=args.demo_root, split='train', pipeline=pipeline)
                else:
                    dataset = CustomDataset(data_root=os.path.join(tmp, 'train'), pipeline=pipeline)
                row = dict(data=data, out=scale, aug='crop+flip' + ('+AA v0' if aa else ''),
                           single=time_pipeline(dataset, args.num_images))
                if args.loader:
                    # a loader epoch over a subset of the demo data keeps the run short
                    if len(dataset) > args.num_images:
                        dataset.data_list = dataset.data_list[:args.num_images]
                    row['loader'] = time_loader(dataset, args)
                rows.append(row)
    header = f'{"data":<26}{"out px":>7}  {"augmentation":<18}{"1 process img/s":>16}'
    if args.loader:
        header += f'{"loader img/s (" + str(args.num_workers) + " workers)":>28}'
    print(header)
    print('-' * len(header))
    for r in rows:
        line = f'{r["data"]:<26}{r["out"]:>7}  {r["aug"]:<18}{r["single"]:>16.1f}'
        if args.loader:
            line += f'{r["loader"]:>28.1f}'
        print(line)


if __name__ == '__main__':
    main()
