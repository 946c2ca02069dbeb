"""Test-time augmentation by flips computed inside the graph, configured with mmpretrain's ``tta_model`` /
``tta_pipeline`` keys.

mmpretrain's flip TTA (``tools/test.py --tta``) flips the *final crop* (``TestTimeAug`` replaces the last step of the
test pipeline) and averages the softmax scores of the views (``AverageClsScoreTTA``).  Flipping the final crop is
the same as flipping the network input, so here the views are made in the graph from one loaded batch: the same
numbers as mmpretrain's pipeline-side views, with one image decode and crop per sample instead of two.
"""
from __future__ import annotations

import copy
import math
from typing import List, Sequence, Tuple

from mindspore import nn, ops

from effnet_mm.registry import MODELS

#: View name -> image axes (N, C, H, W) to reverse.
FLIP_AXES = {'none': (), 'horizontal': (3, ), 'vertical': (2, ), 'diagonal': (2, 3)}


@MODELS.register_module()
class AverageClsScoreTTA(nn.Cell):
    """Averages the softmax probabilities of flipped views of the input batch (mmpretrain ``AverageClsScoreTTA``).

    The output is ``log(mean over views of softmax(logits))``: valid logits whose softmax is the averaged
    probability (computed as a log-sum-exp, so confident predictions never underflow to ``-inf``).  Parameter
    names are those of ``module``, so checkpoints load unchanged.

    Example config (``tools/test.py --tta`` builds the same from ``tta_model`` and ``tta_pipeline``)::

        tta_model = dict(type='AverageClsScoreTTA')
        model = dict(type='AverageClsScoreTTA', module=dict(type='ImageClassifier', ...),
                     views=('horizontal', 'none'))

    Args:
        module: the classifier (config or cell).
        views: one entry per view: ``'none'``, ``'horizontal'``, ``'vertical'`` or ``'diagonal'`` flip.
    """

    def __init__(self, module, views: Sequence[str] = ('horizontal', 'none')) -> None:
        super().__init__(auto_prefix=False)
        views = tuple(views)
        bad = [v for v in views if v not in FLIP_AXES]
        if bad or not views:
            raise ValueError(f'AverageClsScoreTTA: views must be taken from {sorted(FLIP_AXES)}, got {views!r}')
        self.module = MODELS.build(module) if isinstance(module, dict) else module
        self.views = views
        self.log_num_views = math.log(len(views))

    def construct(self, inputs):
        log_probs = []
        for view in self.views:
            axes = FLIP_AXES[view]
            x = ops.flip(inputs, axes) if axes else inputs
            log_probs.append(ops.log_softmax(self.module(x), -1))
        stacked = ops.stack(log_probs)
        peak = stacked.max(axis=0)
        return peak + ops.log(ops.exp(stacked - peak).sum(axis=0)) - self.log_num_views


def _flip_view(transform: dict, where: str) -> str:
    """The view of a ``RandomFlip`` with prob 0 or 1 inside ``TestTimeAug``."""
    if not isinstance(transform, dict) or transform.get('type') != 'RandomFlip':
        raise ValueError(f'{where}: only RandomFlip views can be computed in the graph, got {transform!r}')
    prob = float(transform.get('prob', 0.5))
    direction = transform.get('direction', 'horizontal')
    if prob not in (0.0, 1.0) or not isinstance(direction, str):
        raise ValueError(f'{where}: a TTA flip needs prob=1.0 or 0.0 and one direction, got {transform!r}')
    return direction if prob == 1.0 else 'none'


def split_tta_pipeline(tta_pipeline: Sequence[dict]) -> Tuple[List[dict], Tuple[str, ...]]:
    """``(pipeline, views)`` of an mmpretrain-style ``tta_pipeline`` ending with a flip ``TestTimeAug``.

    ``[..., dict(type='TestTimeAug', transforms=[[RandomFlip(prob=1.), RandomFlip(prob=0.)], [PackInputs()]])]``
    gives ``([..., PackInputs()], ('horizontal', 'none'))``: the first group holds the views, the following groups
    one transform each (applied to every view; only ``PackInputs`` is allowed there, since the flips happen on the
    packed batch).
    """
    pipeline = [copy.deepcopy(dict(t)) if isinstance(t, dict) else t for t in tta_pipeline]
    tta = [i for i, t in enumerate(pipeline) if isinstance(t, dict) and t.get('type') == 'TestTimeAug']
    if len(tta) != 1 or tta[0] != len(pipeline) - 1:
        raise ValueError(f'tta_pipeline must end with exactly one TestTimeAug step, got types '
                         f'{[t.get("type") if isinstance(t, dict) else t for t in pipeline]}')
    groups = pipeline.pop().get('transforms')
    if not isinstance(groups, (list, tuple)) or not groups or not all(isinstance(g, (list, tuple)) for g in groups):
        raise ValueError(f'tta_pipeline: TestTimeAug.transforms must be a list of lists, got {groups!r}')
    views = tuple(_flip_view(t, 'tta_pipeline: TestTimeAug.transforms[0]') for t in groups[0])
    for i, group in enumerate(groups[1:], start=1):
        if len(group) != 1 or not isinstance(group[0], dict) or group[0].get('type') != 'PackInputs':
            raise ValueError(f'tta_pipeline: TestTimeAug.transforms[{i}] may only be [PackInputs], got {group!r}')
        pipeline.append(group[0])
    if not pipeline or pipeline[-1].get('type') != 'PackInputs':
        raise ValueError('tta_pipeline: the pipeline must end with PackInputs (inside or before TestTimeAug)')
    return pipeline, views


def default_tta_pipeline(test_pipeline: Sequence[dict]) -> List[dict]:
    """mmpretrain's default: the test pipeline with its last step (PackInputs) run after a flip / no-flip pair."""
    pipeline = [copy.deepcopy(dict(t)) for t in test_pipeline]
    if not pipeline:
        raise ValueError('test_dataloader.dataset.pipeline is empty: cannot derive a tta_pipeline')
    last = pipeline.pop()
    pipeline.append(dict(type='TestTimeAug',
                         transforms=[[dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                                      dict(type='RandomFlip', prob=0.0, direction='horizontal')], [last]]))
    return pipeline


def apply_tta(cfg) -> None:
    """Turn a test config into its TTA form in place (what ``tools/test.py --tta`` does, as in mmpretrain).

    Uses ``cfg.tta_model`` (default ``dict(type='AverageClsScoreTTA')``) and ``cfg.tta_pipeline`` (default: the test
    pipeline with a horizontal-flip ``TestTimeAug`` before its last step): the model becomes the TTA wrapper around
    ``cfg.model`` with the views of the ``TestTimeAug`` step, and the test pipeline becomes the ``tta_pipeline``
    without it.
    """
    loader = cfg.get('test_dataloader')
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    if not isinstance(dataset, dict) or 'pipeline' not in dataset:
        raise KeyError('--tta needs test_dataloader.dataset.pipeline in the config')
    tta_pipeline = cfg.get('tta_pipeline') or default_tta_pipeline(dataset['pipeline'])
    pipeline, views = split_tta_pipeline(tta_pipeline)
    tta_model = dict(cfg.get('tta_model') or dict(type='AverageClsScoreTTA'))
    model = copy.deepcopy(dict(cfg.model))
    if cfg.get('data_preprocessor') is not None:
        # The runner would copy a top-level data_preprocessor into the wrapper: it belongs to the classifier.
        if model.get('data_preprocessor') is None:
            model['data_preprocessor'] = copy.deepcopy(dict(cfg.data_preprocessor))
        cfg.data_preprocessor = None
    tta_model.setdefault('views', views)
    tta_model['module'] = model
    cfg.model = tta_model
    dataset['pipeline'] = pipeline


__all__ = ['AverageClsScoreTTA', 'apply_tta', 'split_tta_pipeline', 'default_tta_pipeline', 'FLIP_AXES']
