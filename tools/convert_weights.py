"""Convert an EfficientNet checkpoint of TF, mmpretrain, timm, MindCV or the MindSpore model zoo to effnet_mm weights
(a MindSpore .ckpt that carries its model config), or effnet_mm weights to a timm hub folder.

Examples::

    python tools/convert_weights.py efficientnet_b0.ra_in1k/ checkpoints/b0_timm.ckpt          # HF hub folder
    python tools/convert_weights.py model.safetensors b0.ckpt --arch tf_efficientnet_b0       # bare timm file
    python tools/convert_weights.py efficientnet-b0_3rdparty_8xb32_in1k_20220119-a7e2a0b1.pth b0.ckpt
    python tools/convert_weights.py efficientnet_b0-f8d7aa2a-910v2.ckpt b0_mindcv.ckpt --from mindcv
    python tools/convert_weights.py efficientnet-b0.tar.gz b0_tf.ckpt                          # official TF
    python tools/convert_weights.py b0_mindcv.ckpt exported/ --to timm                          # back to timm

See docs/conversion.md for every source, its formats, the config that evaluates it and the measured parity.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

# Quiet TensorFlow's C++ logs (TF checkpoints are read with it); must happen before it is imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from effnet_mm.converters import SOURCES, TARGETS, convert_weights  # noqa: E402
from effnet_mm.runtime import cli  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert EfficientNet weights of another library to effnet_mm (or '
                                                 'effnet_mm weights to timm)')
    parser.add_argument('src', help='checkpoint file (.safetensors, .pth/.bin, .ckpt), Hugging Face hub folder '
                                    '(config.json + weights), TF checkpoint folder/prefix or .tar.gz')
    parser.add_argument('dst', help='output .ckpt (or, with --to timm, the output folder)')
    parser.add_argument('--from', dest='source', default='auto', choices=SOURCES,
                        help='source library; "auto" detects it from the file type and tensor names (default)')
    parser.add_argument('--arch', default='auto',
                        help='variant (b0..b8, l2) or timm name (efficientnet_b0, tf_efficientnet_b0); "auto" '
                             'detects it from the tensor shapes (default)')
    parser.add_argument('--to', default='effnet_mm', choices=TARGETS, help='output format (default: effnet_mm)')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='classes of the target model; another count than the checkpoint\'s leaves the '
                             'classifier out (for fine-tuning)')
    parser.add_argument('--no-ema', action='store_true',
                        help='TF: convert the raw variables instead of their ExponentialMovingAverage shadows')
    parser.add_argument('--config', default=None,
                        help='store this config with the weights instead of the automatic one (it must fit them)')
    parser.add_argument('--save-config', default=None, metavar='PATH',
                        help='also write the stored config as a .py file, e.g. for tools/test.py')
    parser.add_argument('--force', action='store_true', help='replace an existing destination')
    parser.add_argument('--publish', action='store_true',
                        help='name the output <dst stem>-<first 8 hex of its sha256>.ckpt')
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s', stream=sys.stderr)

    def run() -> int:
        if args.save_config is not None and os.path.lexists(args.save_config) and not args.force:
            raise FileExistsError(f'{args.save_config!r} already exists; pass --force to replace it')
        result = convert_weights(args.src, args.dst, source=args.source, arch=args.arch, to=args.to,
                                 num_classes=args.num_classes, use_ema=not args.no_ema, config=args.config,
                                 force=args.force, publish=args.publish, show_progress=True)
        if args.save_config is not None:
            from effnet_mm.utils.fileio import atomic_write
            with atomic_write(args.save_config, overwrite=args.force) as tmp, open(tmp, 'w', encoding='utf-8') as f:
                f.write(result.cfg_text)
            result.config = args.save_config
        print(result.summary())
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
