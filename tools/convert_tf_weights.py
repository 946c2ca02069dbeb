"""Convert an official TensorFlow EfficientNet checkpoint into an effnet_mm (MindSpore) weights file.

Kept for existing scripts: ``tools/convert_weights.py SRC DST --from tf`` does the same (and more sources).

Examples::

    python tools/convert_tf_weights.py efficientnet-b0.tar.gz checkpoints/efficientnet-b0_3rdparty_in1k.ckpt
    python tools/convert_tf_weights.py efficientnet-b3/ b3.ckpt --arch b3 --publish
    python tools/convert_tf_weights.py efficientnet-b0/model.ckpt b0_raw.ckpt --no-ema

See docs/conversion.md for the checkpoint families and the configs that evaluate them.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_weights  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return convert_weights.main(argv + ['--from', 'tf'])


if __name__ == '__main__':
    sys.exit(main())
