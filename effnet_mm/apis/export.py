"""Export a classifier (data preprocessor included) to MindIR or ONNX with a static input shape."""
from __future__ import annotations

import json
import os
from typing import Tuple

import numpy as np
from mmengine.config import Config

from effnet_mm.ops import kernels_disabled
from effnet_mm.utils.fileio import atomic_write, write_text

from .inference import test_crop_size

EXPORT_FORMATS = ('MINDIR', 'ONNX')
_SUFFIX = {'MINDIR': '.mindir', 'ONNX': '.onnx'}
INPUT_DTYPES = ('float32', 'uint8')
#: Names of the graph's input and output (ONNX); MindIR graphs are called positionally.
INPUT_NAME, OUTPUT_NAME = 'input', 'logits'


def input_shape_from_cfg(cfg: Config, batch_size: int = 1) -> Tuple[int, int, int, int]:
    """``(batch_size, 3, S, S)``: the static input shape, ``S`` from the config's test pipeline (the eval crop)."""
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    size = test_crop_size(cfg)
    return (int(batch_size), 3, size, size)


def _output_path(out: str, file_format: str) -> str:
    suffix = _SUFFIX[file_format]
    return out if out.lower().endswith(suffix) else out + suffix


def metadata_path(path: str) -> str:
    """The metadata file written beside an export: ``b0.onnx`` → ``b0.onnx.json``."""
    return f'{path}.json'


def export_model(model, file_format: str, out: str, input_shape: Tuple[int, int, int, int],
                 input_dtype: str = 'float32', seed: int = 0) -> str:
    """Export ``model`` (in evaluation mode) for a fixed ``input_shape``.

    The graph is the whole ``ImageClassifier``: it takes a raw NCHW **BGR** batch on the 0..255 scale (``float32``
    or ``uint8`` as ``input_dtype`` says), does BGR→RGB and the config's normalisation inside, and returns
    ``(N, num_classes)`` logits (no softmax).  Beside it, :func:`metadata_path` gets a JSON file with what a
    deployment needs to use the graph: input name, shape, dtype and channel order, output name, and the class names
    (``model.dataset_meta``, from the config or the checkpoint's run).

    Args:
        model: the classifier (e.g. from :func:`~effnet_mm.apis.init_model`).
        file_format: ``'MINDIR'`` or ``'ONNX'``.
        out: output file; the format's suffix (``.mindir`` / ``.onnx``) is added when missing.
        input_shape: ``(N, 3, H, W)``, e.g. from :func:`input_shape_from_cfg`.
        input_dtype: ``'float32'`` or ``'uint8'``.
        seed: seed of the dummy tracing input (its values do not matter, only its shape and dtype).

    Returns:
        The path written.
    """
    import mindspore as ms
    from mindspore import Tensor

    file_format = str(file_format).upper()
    if file_format not in EXPORT_FORMATS:
        raise ValueError(f'file_format must be one of {EXPORT_FORMATS}, got {file_format!r}')
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f'input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}')
    if len(input_shape) != 4 or input_shape[1] != 3:
        raise ValueError(f'input_shape must be (N, 3, H, W), got {tuple(input_shape)}')
    path = _output_path(out, file_format)
    dummy = Tensor(np.random.default_rng(seed).integers(0, 256, input_shape).astype(input_dtype))
    model.set_train(False)
    suffix = _SUFFIX[file_format]
    # Exported graphs cannot carry effnet_mm's custom CPU kernels: trace MindSpore's own ops.
    with atomic_write(path) as tmp, kernels_disabled(model):
        if file_format == 'MINDIR':
            ms.export(model, dummy, file_name=tmp[:-len(suffix)], file_format='MINDIR')
        else:
            ms.onnx.export(model, dummy, file_name=tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    meta = dict(format=file_format, graph=os.path.basename(path),
                input=dict(name=INPUT_NAME, shape=list(input_shape), dtype=input_dtype, layout='NCHW',
                           channel_order='BGR', value_range=[0, 255]),
                output=dict(name=OUTPUT_NAME, meaning='logits (no softmax)'),
                classes=list(classes) if classes else None)
    write_text(metadata_path(path), json.dumps(meta, indent=1) + '\n')
    return path
