"""Parity of converted checkpoints with the libraries that wrote them: the figures of docs/conversion.md.

For every folder of the interop fixtures (a checkpoint written by timm, mmpretrain, MindCV or the MindSpore model
zoo, with the source's own preprocessed input and logits), this converts the checkpoint with
``effnet_mm.converters.convert_weights``, builds the model from the config it carries, and prints:

* max |Δlogit| on the source's own preprocessed input, with effnet_mm's CPU kernels and with MindSpore's own ops;
* the gap of the stored config's OpenCV test pipeline on the fixture image (effnet_mm kernels): max |Δinput| after
  normalisation, max |Δlogit|, and whether the top-1 class agrees.

Run from a scratch directory (MindSpore writes into the CWD), e.g.::

    cd /tmp && GLOG_v=3 python /path/to/benchmarks/interop_parity.py --fixtures /path/to/shared/fixtures/interop
"""
from __future__ import annotations

import argparse
import os
import tempfile
from typing import List, Optional

import numpy as np

FIXTURES = {
    'timm/efficientnet_b0': '',
    'timm/tf_efficientnet_b0': '',
    'mmpretrain/efficientnet-b0_8xb32_in1k': 'checkpoint.pth',
    'mmpretrain/efficientnet-b0_8xb32-01norm_in1k': 'checkpoint_mmcls0x_plain_legacy.pth',
    'mindcv/efficientnet_b0': 'efficientnet_b0.ckpt',
    'msmodels/efficientnet_b2': 'efficientnet_b2.ckpt',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--fixtures', required=True, help='the interop fixtures folder (shared/fixtures/interop)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    from mindspore import Tensor

    from effnet_mm.apis import init_model
    from effnet_mm.converters import convert_weights
    from effnet_mm.datasets.transforms import Compose
    from effnet_mm.ops import set_fast_conv

    args = parse_args(argv)
    print('| fixture | config | max abs diff (effnet_mm kernels) | max abs diff (MindSpore ops) | '
          'pipeline: max abs input diff | pipeline: max abs logit diff | pipeline: top-1 agrees |')
    print('|---|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as out:
        for name, file in FIXTURES.items():
            folder = os.path.join(args.fixtures, name)
            dst = os.path.join(out, name.replace('/', '_') + '.ckpt')
            result = convert_weights(os.path.join(folder, file) if file else folder, dst)
            x = Tensor(np.load(os.path.join(folder, 'input_preprocessed_nchw_float32.npy')))
            expected = np.load(os.path.join(folder, 'logits.npy'))
            model = init_model(checkpoint=dst)
            fast = np.abs(model.classify(x).asnumpy() - expected).max()
            pipeline = Compose([t for t in model.cfg.test_dataloader.dataset.pipeline
                                if t['type'] != 'LoadImageFromFile'])
            rgb = np.load(os.path.join(folder, 'input_image_uint8_hwc_rgb.npy'))
            inputs = Tensor(pipeline({'img': np.ascontiguousarray(rgb[:, :, ::-1])})['inputs'][None])
            source_input = np.load(os.path.join(folder, 'input_preprocessed_nchw_float32.npy'))
            gap_input = np.abs(model.data_preprocessor(inputs).asnumpy() - source_input).max()
            logits = model(inputs).asnumpy()
            gap = np.abs(logits - expected).max()
            set_fast_conv(model, False)
            plain = np.abs(model.classify(x).asnumpy() - expected).max()
            print(f'| {name} | {result.config} | {fast:.1e} | {plain:.1e} | {gap_input:.3g} | {gap:.3g} | '
                  f'{"yes" if logits.argmax() == expected.argmax() else "no"} |')


if __name__ == '__main__':
    main()
