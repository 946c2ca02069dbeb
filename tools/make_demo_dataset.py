"""Write the embedded demo dataset (10 shape classes, 72x72 PNG) to a folder.

Example::

    python tools/make_demo_dataset.py --out data/effnet_demo
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

from effnet_mm.datasets.demo_generator import DEMO_CLASSES, make_demo_dataset
from effnet_mm.runtime import cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/effnet_demo', help='output folder (must not exist yet)')
    parser.add_argument('--seed', type=int, default=0, help='generation seed (same seed, same bytes)')
    parser.add_argument('--train-per-class', type=cli.positive_int, default=300, help='training images per class')
    parser.add_argument('--val-per-class', type=cli.positive_int, default=50, help='validation images per class')
    parser.add_argument('--size', type=cli.positive_int, default=72, help='image side in pixels')
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        if os.path.exists(args.out):
            raise FileExistsError(f'{args.out} already exists; remove it first or choose another --out')
        start = time.perf_counter()
        meta = make_demo_dataset(args.out, seed=args.seed, train_per_class=args.train_per_class,
                                 val_per_class=args.val_per_class, size=args.size)
        print(f'wrote {args.out}: {len(DEMO_CLASSES)} classes x ({meta["train_per_class"]} train + '
              f'{meta["val_per_class"]} val) {meta["size"]}x{meta["size"]} PNG in {time.perf_counter() - start:.1f} s')
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
