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

from effnet_mm.apis.export import EXPORT_FORMATS, INPUT_DTYPES
from effnet_mm.runtime import cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export an effnet_mm model to MindIR or ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='weights (.ckpt)')
    parser.add_argument('--format', required=True, type=str.upper, choices=EXPORT_FORMATS, help='output format')
    parser.add_argument('--out', help='output file (default: <checkpoint stem>.<mindir|onnx> next to the checkpoint)')
    parser.add_argument('--batch-size', type=cli.positive_int, default=1,
                        help='static batch size of the graph (default 1)')
    parser.add_argument('--input-dtype', default='float32', choices=INPUT_DTYPES,
                        help='dtype of the graph input, BGR 0..255 either way (default float32)')
    cli.add_cfg_options_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        from effnet_mm.apis import export_model, init_model, input_shape_from_cfg

        model = init_model(args.config, args.checkpoint, cfg_options=args.cfg_options)
        shape = input_shape_from_cfg(model.cfg, args.batch_size)
        out = args.out or os.path.splitext(args.checkpoint)[0]
        path = export_model(model, args.format, out, shape, input_dtype=args.input_dtype)
        print(f'Exported {args.format} to {path}: input "input" {args.input_dtype} {shape} (NCHW, BGR, 0..255), '
              f'output "logits" ({shape[0]}, {model.head.num_classes})')
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
