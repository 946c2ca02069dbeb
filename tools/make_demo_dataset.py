"""Write the embedded demo dataset (10 shape classes, 72x72 PNG) to a folder.

Example::

    python tools/make_demo_dataset.py --out data/effnet_demo
"""
from __future__ import annotations

import argparse
import os
import time

from effnet_mm.datasets.demo_generator import DEMO_CLASSES, make_demo_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/effnet_demo', help='output folder (must not exist yet)')
    parser.add_argument('--seed', type=int, default=0, help='generation seed (same seed, same bytes)')
    parser.add_argument('--train-per-class', type=int, default=300, help='training images per class')
    parser.add_argument('--val-per-class', type=int, default=50, help='validation images per class')
    parser.add_argument('--size', type=int, default=72, help='image side in pixels')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if os.path.exists(args.out):
        raise SystemExit(f'{args.out} already exists; remove it first or choose another --out')
    start = time.perf_counter()
    meta = make_demo_dataset(args.out, seed=args.seed, train_per_class=args.train_per_class,
                             val_per_class=args.val_per_class, size=args.size)
    print(f'wrote {args.out}: {len(DEMO_CLASSES)} classes x ({meta["train_per_class"]} train + '
          f'{meta["val_per_class"]} val) {meta["size"]}x{meta["size"]} PNG in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
