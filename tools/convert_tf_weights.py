"""Convert an official TensorFlow EfficientNet checkpoint into an effnet_mm (MindSpore) weights file.

Examples::

    python tools/convert_tf_weights.py efficientnet-b0.tar.gz checkpoints/efficientnet-b0_3rdparty_in1k.ckpt
    python tools/convert_tf_weights.py efficientnet-b3/ b3.ckpt --arch b3 --publish
    python tools/convert_tf_weights.py efficientnet-b0/model.ckpt b0_raw.ckpt --no-ema

See docs/conversion.md for the checkpoint families and the configs that evaluate them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

# Quiet the C++ logs of MindSpore and TensorFlow; must happen before either is imported.
os.environ.setdefault('GLOG_v', '3')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from effnet_mm.converters import ConversionError, convert_tf_checkpoint  # noqa: E402
from effnet_mm.variants import VARIANTS  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert an official TF EfficientNet checkpoint to effnet_mm weights')
    parser.add_argument('src', help='checkpoint prefix (.../model.ckpt), folder with a "checkpoint" file, or .tar.gz')
    parser.add_argument('dst', help='output MindSpore checkpoint (.ckpt)')
    parser.add_argument('--arch', default='auto', choices=['auto', *VARIANTS],
                        help='expected variant; "auto" detects it from the variable scope (default)')
    parser.add_argument('--no-ema', action='store_true',
                        help='convert the raw variables instead of their ExponentialMovingAverage shadows')
    parser.add_argument('--num-classes', type=int, default=1000,
                        help='classes of the target model; not 1000 leaves the classifier out (for fine-tuning)')
    parser.add_argument('--publish', action='store_true',
                        help='name the output <dst stem>-<first 8 hex of its sha256>.ckpt')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s', stream=sys.stderr)
    try:
        result = convert_tf_checkpoint(args.src, args.dst, arch=args.arch, use_ema=not args.no_ema,
                                       num_classes=args.num_classes, publish=args.publish, show_progress=True)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == '__main__':
    sys.exit(main())
