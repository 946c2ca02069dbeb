"""Look at what a config's pipeline feeds the model: a PNG grid of samples, each captioned with its label name.

Examples::

    python tools/analysis/browse_dataset.py configs/efficientnet/efficientnet-b0_1xb32_demo.py --output-dir vis
    python tools/analysis/browse_dataset.py configs/efficientnet/efficientnet-b0_8xb32-aa_in1k.py --phase train \\
        --output-dir vis --show-number 24 --ncols 6 --epoch 3

The samples are the first ``--show-number`` ones the ``<phase>_dataloader`` reads in ``--epoch`` (its shuffled order
for training), with the same augmentation the loader gives them (seed: ``--seed``, else ``randomness.seed``, else 0;
the loader's ``sampler.seed`` wins).  Writes ``<output-dir>/<phase>_epoch<E>.png``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import cv2

from effnet_mm.datasets import build_dataloader
from effnet_mm.datasets.visualization import sample_grid
from effnet_mm.runtime import cli, load_config
from effnet_mm.utils.fileio import atomic_write


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Write a PNG grid of pipeline outputs with their label names')
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', required=True, help='folder for the PNG (created if missing)')
    parser.add_argument('--phase', choices=['train', 'val', 'test'], default='train', help='which dataloader')
    parser.add_argument('-n', '--show-number', type=cli.positive_int, default=16, help='samples shown (default 16)')
    parser.add_argument('--ncols', type=cli.positive_int,
                        help='grid columns (default: about the square root of the number)')
    parser.add_argument('--epoch', type=int, default=0, help='epoch whose order and augmentation are shown')
    parser.add_argument('--seed', type=int, help='seed (default: randomness.seed of the config, else 0)')
    parser.add_argument('--tile-size', type=cli.positive_int, default=160,
                        help='smallest side of a shown image (upscaled)')
    cli.add_cfg_options_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def browse(args: argparse.Namespace) -> str:
    """Write the grid PNG; returns its path."""
    cfg = load_config(args.config, args.cfg_options)
    key = f'{args.phase}_dataloader'
    if not cfg.get(key):
        raise KeyError(f'config {args.config} has no {key}')
    seed = args.seed if args.seed is not None else (cfg.get('randomness') or {}).get('seed')
    loader = build_dataloader(cfg[key].to_dict(), seed=seed if isinstance(seed, int) else 0)
    loader.set_epoch(args.epoch)
    indices = loader.indices()[:args.show_number]
    grid = sample_grid(loader.dataset, indices, seed=loader.seed, epoch=args.epoch, ncols=args.ncols,
                       tile_size=args.tile_size)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, f'{args.phase}_epoch{args.epoch}.png')
    replaced = os.path.exists(path)
    with atomic_write(path) as tmp:
        if not cv2.imwrite(tmp, grid):
            raise OSError(f'OpenCV could not write {path}')
    print(f'{"replaced" if replaced else "wrote"} {path}: {len(indices)} {args.phase} samples of epoch {args.epoch}, '
          f'{grid.shape[1]}x{grid.shape[0]} px')
    return path


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        browse(args)
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
