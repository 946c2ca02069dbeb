"""Export a model (its data preprocessor included) to MindIR or ONNX with a static input shape.

Examples::

    python tools/export.py configs/efficientnet/efficientnet-b0_8xb32_in1k.py b0.ckpt --format ONNX
    python tools/export.py configs/efficientnet/efficientnet-b4_8xb32-01norm_in1k.py b4_ap.ckpt \\
        --format MINDIR --out exported/b4_ap --batch-size 4 --input-dtype uint8

The graph takes an ``(N, 3, S, S)`` BGR batch on the 0..255 scale (S = the config's test crop) and returns logits;
see docs/export_inference.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

os.environ.setdefault('GLOG_v', '3')

from mmengine.config import DictAction  # noqa: E402

from effnet_mm.apis import EXPORT_FORMATS, error_message, export_model, init_model, input_shape_from_cfg  # noqa: E402
from effnet_mm.apis.export import INPUT_DTYPES  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export an effnet_mm model to MindIR or ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='weights (.ckpt)')
    parser.add_argument('--format', required=True, type=str.upper, choices=EXPORT_FORMATS, help='output format')
    parser.add_argument('--out', help='output file (default: <checkpoint stem>.<mindir|onnx> next to the checkpoint)')
    parser.add_argument('--batch-size', type=int, default=1, help='static batch size of the graph (default 1)')
    parser.add_argument('--input-dtype', default='float32', choices=INPUT_DTYPES,
                        help='dtype of the graph input, BGR 0..255 either way (default float32)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        model = init_model(args.config, args.checkpoint, cfg_options=args.cfg_options)
        shape = input_shape_from_cfg(model.cfg, args.batch_size)
        out = args.out or os.path.splitext(args.checkpoint)[0]
        path = export_model(model, args.format, out, shape, input_dtype=args.input_dtype)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f'error: {error_message(err)}', file=sys.stderr)
        return 1
    print(f'Exported {args.format} to {path}: input "input" {args.input_dtype} {shape} (NCHW, BGR, 0..255), '
          f'output "logits" ({shape[0]}, {model.head.num_classes})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
