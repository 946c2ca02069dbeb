"""Every writer of checkpoints, pointers, exports, converted weights, results and pictures goes through
``effnet_mm.utils.fileio.atomic_write``: when the final step of a write fails, the previous file is intact.

The final step (``fileio._commit``) is made to fail; a writer that bypassed the helper would change the destination
anyway, and the test would see it.
"""
import json
import os

import numpy as np
import pytest

from effnet_mm.utils import fileio
from tests.helpers import INTEROP_FIXTURES, load_tool

PREVIOUS = b'the previous complete file'


class CommitFailed(OSError):
    pass


@pytest.fixture
def failing_commit(monkeypatch):
    def fail(tmp, path):
        raise CommitFailed(f'simulated crash before {path} was replaced')

    monkeypatch.setattr(fileio, '_commit', fail)


def _tiny_classifier():
    import mindspore as ms

    from effnet_mm.registry import MODELS

    ms.set_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch='b0'),
                              neck=dict(type='GlobalAveragePooling'),
                              head=dict(type='LinearClsHead', num_classes=3, in_channels=1280)))
    model.dataset_meta = {'classes': ['a', 'b', 'c']}
    return model


def _checkpoint(path):
    from effnet_mm.utils import save_checkpoint
    save_checkpoint({'w': np.ones(3, np.float32)}, path, {'format': 'x'})


def _pointer(path):
    from effnet_mm.engine.checkpoints import CheckpointFolder
    CheckpointFolder(os.path.dirname(path)).write_pointer('epoch_9.ckpt')


def _export(path):
    from effnet_mm.apis import export_model
    export_model(_tiny_classifier(), 'ONNX', path, (1, 3, 32, 32))


def _converted(path):
    from effnet_mm.converters import convert_weights
    convert_weights(str(INTEROP_FIXTURES / 'mmpretrain' / 'efficientnet-b0_8xb32_in1k' / 'checkpoint.pth'), path,
                    force=True)


def _plot(path):
    scalars = os.path.join(os.path.dirname(path), 'scalars.json')
    with open(scalars, 'w') as f:
        f.write(json.dumps({'loss': 1.0, 'step': 1}) + '\n' + json.dumps({'loss': 0.5, 'step': 2}) + '\n')
    tool = load_tool('analysis/plot_log.py')
    tool.plot({'run': tool.load_scalars(scalars)}, ['loss'], 'step', path)


def _confusion_picture(path):
    import cv2

    from effnet_mm.evaluation.confusion_plot import draw_confusion_matrix

    image = draw_confusion_matrix(np.eye(3, dtype=np.int64), ['a', 'b', 'c'], np.zeros(3, np.int64), True)
    with fileio.atomic_write(path) as tmp:  # what tools/analysis/confusion_matrix.py does
        assert cv2.imwrite(tmp, image)


WRITERS = {
    'training/weights checkpoint (save_checkpoint)': ('epoch_1.ckpt', _checkpoint),
    'last_checkpoint pointer': ('last_checkpoint', _pointer),
    'ONNX export': ('model.onnx', _export),
    'converted weights (convert_weights)': ('converted.ckpt', _converted),
    'training-curve plot (plot_log)': ('curves.png', _plot),
    'confusion-matrix picture': ('cm.png', _confusion_picture),
}


@pytest.mark.parametrize('name', sorted(WRITERS))
def test_a_failed_write_keeps_the_previous_file(name, tmp_path, failing_commit):
    filename, write = WRITERS[name]
    path = tmp_path / filename
    path.write_bytes(PREVIOUS)
    with pytest.raises(CommitFailed):
        write(str(path))
    assert path.read_bytes() == PREVIOUS, f'{name} changed the destination without atomic_write'
    assert not [f for f in os.listdir(tmp_path) if fileio.PARTIAL_MARKER in f], 'a temporary file was left behind'


def test_timm_export_folder_is_replaced_whole_or_not_at_all(tmp_path, failing_commit):
    from effnet_mm.converters import convert_weights

    dst = tmp_path / 'timm_b0'
    dst.mkdir()
    (dst / 'model.safetensors').write_bytes(PREVIOUS)
    with pytest.raises(CommitFailed):
        convert_weights(str(INTEROP_FIXTURES / 'mmpretrain' / 'efficientnet-b0_8xb32_in1k' / 'checkpoint.pth'),
                        str(dst), to='timm', force=True)
    assert os.listdir(dst) == ['model.safetensors'] and (dst / 'model.safetensors').read_bytes() == PREVIOUS


def test_demo_dataset_is_written_whole_or_not_at_all(tmp_path, failing_commit):
    from effnet_mm.datasets import make_demo_dataset

    with pytest.raises(CommitFailed):
        make_demo_dataset(str(tmp_path / 'demo'), train_per_class=1, val_per_class=1, size=16)
    assert os.listdir(tmp_path) == []
