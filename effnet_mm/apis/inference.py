"""Classify images with a model from :func:`~effnet_mm.apis.init_model`: :func:`inference_model`."""
from __future__ import annotations

import copy
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from mmengine.config import Config

ImageInput = Union[str, np.ndarray]

#: Keys of a transform config that give the side of the image it outputs, by transform type.
_SIZE_KEYS = {'EfficientNetCenterCrop': 'crop_size', 'EfficientNetRandomCrop': 'scale'}


def test_pipeline_cfg(cfg: Config) -> List[dict]:
    """The evaluation pipeline of a config: ``test_dataloader.dataset.pipeline``, else ``val_dataloader``'s, else
    the top-level ``test_pipeline``.

    Raises:
        KeyError: the config has none of them.
    """
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        dataset = loader.get('dataset') if isinstance(loader, Mapping) else None
        if isinstance(dataset, Mapping) and dataset.get('pipeline'):
            return [dict(t) for t in copy.deepcopy(dataset['pipeline'])]
    if cfg.get('test_pipeline'):
        return [dict(t) for t in copy.deepcopy(cfg.test_pipeline)]
    raise KeyError(f'config {cfg.filename or "<in memory>"} has no test pipeline: expected '
                   f'test_dataloader.dataset.pipeline, val_dataloader.dataset.pipeline or test_pipeline')


def test_crop_size(cfg: Config) -> int:
    """The (square) image side the config's test pipeline produces, e.g. 300 for B3 (its ``EfficientNetCenterCrop``).

    Raises:
        ValueError: no transform of the test pipeline fixes the output size.
    """
    pipeline = test_pipeline_cfg(cfg)
    size = None
    for transform in pipeline:
        key = _SIZE_KEYS.get(str(transform.get('type')))
        if key is not None and key in transform:
            size = transform[key]
    if not isinstance(size, int) or size <= 0:
        types = [t.get('type') for t in pipeline]
        raise ValueError(f'config {cfg.filename or "<in memory>"}: the test pipeline {types} has no transform that '
                         f'fixes the input size (expected one of {sorted(_SIZE_KEYS)} with a positive int size)')
    return size


def _compose_for(cfg: Config, from_array: bool):
    from effnet_mm.datasets.transforms import Compose

    pipeline = test_pipeline_cfg(cfg)
    if from_array:
        # The caller already decoded the image: start after the loading step.
        pipeline = [t for t in pipeline if t.get('type') != 'LoadImageFromFile']
    return Compose(pipeline)


class _Preparer:
    """Runs the test pipeline on paths (from ``LoadImageFromFile`` on) or decoded arrays (after it); each pipeline
    is built once per :func:`inference_model` call."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._pipelines: Dict[bool, object] = {}

    def _pipeline(self, from_array: bool):
        if from_array not in self._pipelines:
            self._pipelines[from_array] = _compose_for(self.cfg, from_array)
        return self._pipelines[from_array]

    def __call__(self, img: ImageInput, index: int) -> np.ndarray:
        if isinstance(img, str):
            packed = self._pipeline(False)({'img_path': img, 'sample_idx': index})
        elif isinstance(img, np.ndarray):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f'inference_model: an array input must be HWC uint8 with 3 channels in BGR order '
                                 f'(as cv2.imread gives), got shape {img.shape} dtype {img.dtype}')
            results = {'img': img, 'img_shape': img.shape[:2], 'ori_shape': img.shape[:2], 'sample_idx': index}
            packed = self._pipeline(True)(results)
        else:
            raise TypeError(f'inference_model: expected an image path or an HWC uint8 BGR array, '
                            f'got {type(img).__name__}')
        if packed is None or 'inputs' not in packed:
            raise ValueError(f'inference_model: the test pipeline did not produce "inputs" for image {index}')
        return packed['inputs']


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _class_name(classes: Optional[Sequence[str]], label: int) -> str:
    return str(classes[label]) if classes is not None else str(label)


def inference_model(model, img: Union[ImageInput, Sequence[ImageInput]],
                    topk: int = 5) -> Union[Dict[str, object], List[Dict[str, object]]]:
    """Classify one image (or a list of images) with the test pipeline of ``model.cfg``.

    The image goes through the same steps as in evaluation: OpenCV decoding (BGR), the config's centre crop at the
    variant's resolution, then the model, whose data preprocessor does BGR→RGB and the checkpoint family's
    normalisation.

    Example::

        model = init_model('configs/efficientnet/efficientnet-b0_8xb32_in1k.py', 'b0.ckpt')
        result = inference_model(model, 'demo/cat.jpg')
        print(result['pred_class'], result['pred_score'])

    Args:
        model: a model from :func:`~effnet_mm.apis.init_model` (it needs ``model.cfg``).
        img: an image file path, or an HWC uint8 array in **BGR** order (``cv2.imread``'s); or a list of them,
            run as one batch (``tools/infer.py`` splits folders into ``--batch-size`` chunks).
        topk: how many of the best classes ``'topk'`` lists.

    Returns:
        Per image a dict: ``pred_label`` (int), ``pred_score`` (softmax probability), ``pred_class`` (the name from
        the config's dataset ``classes`` / ``metainfo.classes``, else the index as a string), ``pred_scores``
        (all probabilities) and ``topk`` (a list of ``(label, score, class name)``, best first).  A list input
        gives a list.
    """
    from mindspore import Tensor

    cfg = getattr(model, 'cfg', None)
    if not isinstance(cfg, Config):
        raise AttributeError('inference_model: model.cfg is missing; build the model with effnet_mm.apis.init_model '
                             '(or set model.cfg to its mmengine Config)')
    single = isinstance(img, (str, np.ndarray))
    images = [img] if single else list(img)
    if not images:
        raise ValueError('inference_model: no images given')
    prepare = _Preparer(cfg)
    batch = np.stack([prepare(im, i) for i, im in enumerate(images)])
    model.set_train(False)
    probs = _softmax(model(Tensor(batch)).asnumpy().astype(np.float64))
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    k = max(1, min(int(topk), probs.shape[1]))
    results = []
    for row in probs:
        order = np.argsort(-row, kind='stable')[:k]
        label = int(order[0])
        results.append({
            'pred_label': label,
            'pred_score': float(row[label]),
            'pred_class': _class_name(classes, label),
            'pred_scores': row.astype(np.float32),
            'topk': [(int(i), float(row[i]), _class_name(classes, int(i))) for i in order],
        })
    return results[0] if single else results
