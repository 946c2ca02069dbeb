"""Classify images with a config and a checkpoint; prints the top-k classes per image.

Examples::

    python tools/infer.py configs/efficientnet/efficientnet-b0_8xb32_in1k.py b0.ckpt demo.jpg
    python tools/infer.py configs/efficientnet/efficientnet-b3_8xb32-01norm_in1k.py b3_ap.ckpt images/ --topk 3

Class names come from the config's test dataset (``classes`` / ``metainfo.classes``); ImageNet names are not
shipped, so ImageNet configs print class indices.  See docs/export_inference.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from effnet_mm.runtime import cli

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Classify images with an effnet_mm model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='weights (.ckpt)')
    parser.add_argument('image', help='an image file or a folder of images (not recursive)')
    parser.add_argument('--topk', type=int, default=5, help='classes printed per image (default 5)')
    parser.add_argument('--batch-size', type=int, default=8, help='images per forward pass (default 8)')
    parser.add_argument('--device', default='CPU', help='CPU, GPU or Ascend (optionally :<id>)')
    cli.add_cfg_options_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def list_images(path: str) -> List[str]:
    """``path`` itself, or the image files of the folder ``path`` in sorted order."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise FileNotFoundError(f'no image files ({", ".join(IMAGE_EXTENSIONS)}) in folder {path}')
        return files
    raise FileNotFoundError(f'image or folder not found: {path}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return cli.run_tool(lambda: _classify(args), args.traceback)


def _classify(args: argparse.Namespace) -> int:
    if args.topk < 1 or args.batch_size < 1:
        raise ValueError('--topk and --batch-size must be >= 1')
    from effnet_mm.apis import inference_model, init_model

    images = list_images(args.image)
    model = init_model(args.config, args.checkpoint, device=args.device, cfg_options=args.cfg_options)
    for start in range(0, len(images), args.batch_size):
        chunk = images[start:start + args.batch_size]
        for path, result in zip(chunk, inference_model(model, chunk, topk=args.topk)):
            print(path)
            for rank, (label, score, name) in enumerate(result['topk'], start=1):
                print(f'  {rank}. {name:<24} label={label:<5d} score={score:.4f}')
    return cli.EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
