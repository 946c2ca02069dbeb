"""Images/s per worker of the ImageNet data pipelines: can one CPU core feed an accelerator?

Pipelines (all start with OpenCV JPEG decoding and end with ``PackInputs``):

- ``train-aa``: ``EfficientNetRandomCrop`` 224 + flip + AutoAugment ``v0`` (the TF "-aa" recipe of B0);
- ``train-ra``: ``EfficientNetRandomCrop`` 224 + flip + RandAugment (2 ops, magnitude 10, TF's default);
- ``eval-b0`` ... ``eval-b7``: ``EfficientNetCenterCrop`` at each variant's resolution (``effnet_mm/variants.py``).

Data: ``--num-images`` JPEGs like ImageNet's, written to a temporary folder: mostly 500x375 (some 375x500 and
500x333), quality 90, about 110 KB each, smooth random content plus fine noise (decoding costs what a photo of that
size costs).  Each pipeline is timed

- in this process, one sample after the other with OpenCV limited to one thread, as images per second of this
  thread's CPU time: the speed of one dedicated core, which other load on the machine barely changes (``1 core``;
  the wall-clock figure is printed beside it);
- through ``build_dataloader`` (batch 32, worker *processes* unless ``--threads``) with each ``--workers`` count:
  ``total`` is the wall-clock rate from the first batch to the end (worker start-up left out), ``per worker`` =
  total / workers, and ``per CPU-s`` is images per second of CPU time of the whole loader (this process, its
  threads and its worker processes, start-up included): ``rate / per CPU-s`` is the number of cores a rate needs.

Run from a scratch directory (MindSpore writes into the CWD)::

    GLOG_v=3 python benchmarks/bench_data.py                      # every pipeline, 1 and 2 workers
    GLOG_v=3 python benchmarks/bench_data.py --pipelines train-aa eval-b0 --workers 1 2 4 --num-images 1024

With N workers the machine needs N free cores (plus the main process); on a machine with fewer, per-worker
figures fall.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from effnet_mm.datasets import CustomDataset, build_dataloader
from effnet_mm.datasets.transforms._rng import sample_rng
from effnet_mm.variants import VARIANTS

#: (height, width) of the synthetic JPEGs, in proportion: ImageNet's typical landscape 500x375 dominates.
JPEG_SHAPES = ((375, 500), (375, 500), (375, 500), (500, 375), (333, 500))
EVAL_ARCHS = ('b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7')


def pipelines() -> Dict[str, List[dict]]:
    """The timed pipelines by name."""
    head = [dict(type='LoadImageFromFile'), dict(type='EfficientNetRandomCrop', scale=224),
            dict(type='RandomFlip', prob=0.5, direction='horizontal')]
    table = {
        'train-aa': head + [dict(type='AutoAugment', policies='v0'), dict(type='PackInputs')],
        'train-ra': head + [dict(type='RandAugment', num_policies=2, magnitude_level=10), dict(type='PackInputs')],
    }
    for arch in EVAL_ARCHS:
        table[f'eval-{arch}'] = [dict(type='LoadImageFromFile'),
                                 dict(type='EfficientNetCenterCrop', crop_size=VARIANTS[arch].resolution),
                                 dict(type='PackInputs')]
    return table


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num-images', type=int, default=512, help='JPEGs written and read per measurement')
    parser.add_argument('--pipelines', nargs='+', default=list(pipelines()), choices=list(pipelines()),
                        help='pipelines to time (default: all)')
    parser.add_argument('--workers', type=int, nargs='*', default=[1, 2],
                        help='loader worker counts to time (none: only the in-process figure)')
    parser.add_argument('--threads', action='store_true', help='loader workers are threads, not processes')
    parser.add_argument('--batch-size', type=int, default=32, help='loader batch size')
    return parser.parse_args(argv)


def write_imagenet_like_jpegs(root: str, num_images: int, seed: int = 0) -> float:
    """Write ``root/synthetic/*.JPEG``; returns the mean file size in bytes."""
    folder = os.path.join(root, 'synthetic')
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(num_images):
        h, w = JPEG_SHAPES[i % len(JPEG_SHAPES)]
        # upsampled coarse noise plus fine noise: file size and decode cost close to a natural photo at quality 90
        coarse = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img = np.clip(img + rng.integers(-35, 36, img.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f'{i:05d}.JPEG')
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        total += os.path.getsize(path)
    return total / num_images


def time_in_process(dataset: CustomDataset) -> Tuple[float, float]:
    """Images/s of ``prepare_data`` one sample after the other in this thread (OpenCV on one thread): per second of
    this thread's CPU time, and per wall-clock second."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for idx in range(min(8, len(dataset))):  # warm the file cache, OpenCV and numpy
            dataset.prepare_data(idx, sample_rng(0, 0, idx))
        cpu, wall = time.thread_time(), time.perf_counter()
        for idx in range(len(dataset)):
            dataset.prepare_data(idx, sample_rng(0, 0, idx))
        return len(dataset) / (time.thread_time() - cpu), len(dataset) / (time.perf_counter() - wall)
    finally:
        cv2.setNumThreads(threads)


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_loader(dataset: CustomDataset, workers: int, threads: bool, batch_size: int) -> Tuple[float, float]:
    """``build_dataloader`` over one epoch: images/s of wall-clock time in steady state (from the first batch to the
    end), and images per CPU-second of the whole loader (its worker processes are reaped before the count)."""
    loader = build_dataloader(dict(batch_size=batch_size, num_workers=workers, multiprocessing=not threads,
                                   sampler=dict(type='DefaultSampler', shuffle=True), dataset=dataset))
    cpu = _cpu_seconds()
    batches = iter(loader)
    first = len(next(batches)['sample_idx'])  # worker start-up and the first batch are not steady state
    start = time.perf_counter()
    count = sum(len(batch['sample_idx']) for batch in batches)
    wall = time.perf_counter() - start
    for _ in range(50):  # wait until MindSpore has reaped its worker processes (their CPU time counts then)
        if not multiprocessing.active_children():
            break
        time.sleep(0.1)
    return count / wall, (first + count) / (_cpu_seconds() - cpu)


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.workers:
        import mindspore.dataset  # noqa: F401 - the first import costs seconds; keep it out of the timings
    table = pipelines()
    kind = 'threads' if args.threads else 'processes'
    header = f'{"pipeline":<10}{"out px":>7}{"1 core":>9}{"(wall)":>9}'
    for n in args.workers:
        header += f'{str(n) + (" workers" if n > 1 else " worker") + ": total / per worker / per CPU-s":>42}'
    with tempfile.TemporaryDirectory() as tmp:
        mean_bytes = write_imagenet_like_jpegs(tmp, args.num_images)
        print(f'{cpu_model()}, {os.cpu_count()} logical CPUs; {args.num_images} JPEGs, {mean_bytes / 1e3:.0f} KB '
              f'on average; loader: batch {args.batch_size}, worker {kind}; images/s')
        print(header)
        print('-' * len(header))
        for name in args.pipelines:
            dataset = CustomDataset(data_root=tmp, pipeline=table[name])
            size = next(t.get('scale', t.get('crop_size')) for t in table[name] if 'Crop' in t['type'])
            core, wall = time_in_process(dataset)
            line = f'{name:<10}{size:>7}{core:>9.1f}{wall:>9.1f}'
            for workers in args.workers:
                total, per_cpu = time_loader(dataset, workers, args.threads, args.batch_size)
                line += f'{f"{total:.1f} / {total / workers:.1f} / {per_cpu:.1f}":>42}'
            print(line, flush=True)


if __name__ == '__main__':
    main()
