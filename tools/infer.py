"""Classify images with a config and a checkpoint; prints the top-k classes per image.

Examples::

    python tools/infer.py configs/efficientnet/efficientnet-b0_8xb32_in1k.py b0.ckpt demo.jpg
    python tools/infer.py configs/efficientnet/efficientnet-b3_8xb32-01norm_in1k.py b3_ap.ckpt images/ --topk 3

Each image gets its path, then one line per class: rank, probability, label and class name (``model.dataset_meta``:
the config's dataset classes, or the dataset type's defaults such as the 1000 ImageNet names).  An image that cannot
be read is reported on stderr (one line naming the file and the problem) and the others are still classified; the
exit status is then 1.  See docs/export_inference.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from effnet_mm.datasets.image_files import IMG_EXTENSIONS, find_images
from effnet_mm.runtime import cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Classify images with an effnet_mm model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='weights (.ckpt)')
    parser.add_argument('image', help='an image file or a folder of images (not recursive)')
    parser.add_argument('--topk', type=cli.positive_int, default=5, help='classes printed per image (default 5)')
    parser.add_argument('--batch-size', type=cli.positive_int, default=8, help='images per forward pass (default 8)')
    cli.add_device_arg(parser, default='CPU')
    cli.add_cfg_options_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def list_images(path: str) -> List[str]:
    """``path`` itself, or the image files of the folder ``path`` in sorted order (the datasets' rule: image
    extensions, hidden files such as macOS ``._x.jpg`` left out)."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = find_images(path, recursive=False)
        if not files:
            raise FileNotFoundError(f'no image files ({", ".join(IMG_EXTENSIONS)}) in folder {path}')
        return files
    raise FileNotFoundError(f'image or folder not found: {path}')


def format_prediction(path: str, topk: Sequence[tuple]) -> List[str]:
    """The lines printed for one image: its path, then ``rank. probability label name`` per class."""
    width = max(len(str(label)) for label, _, _ in topk)
    lines = [path]
    for rank, (label, score, name) in enumerate(topk, start=1):
        named = f'  {name}' if name != str(label) else ''
        lines.append(f'  {rank}. {score:.4f}  {label:>{width}d}{named}')
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return cli.run_tool(lambda: _classify(args), args.traceback)


def _classify(args: argparse.Namespace) -> int:
    from effnet_mm.apis import inference_model, init_model
    from effnet_mm.datasets.transforms import CorruptImageError, imread

    images = list_images(args.image)
    model = init_model(args.config, args.checkpoint, device=args.device, cfg_options=args.cfg_options)
    unreadable = 0
    for start in range(0, len(images), args.batch_size):
        paths, arrays = [], []
        for path in images[start:start + args.batch_size]:
            try:
                arrays.append(imread(path))  # decoded here so that one bad file costs only itself
                paths.append(path)
            except (CorruptImageError, FileNotFoundError) as err:
                print(f'error: {err}', file=sys.stderr)
                unreadable += 1
        if arrays:
            for path, result in zip(paths, inference_model(model, arrays, topk=args.topk)):
                print('\n'.join(format_prediction(path, result['topk'])), flush=True)
    if unreadable:
        raise OSError(f'{unreadable} of {len(images)} images could not be read')
    return cli.EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
