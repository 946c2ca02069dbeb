"""TensorboardVisBackend: event files of a real (tiny) training run, read back with TensorBoard's own reader."""
import glob
import os

import pytest
from mmengine.config import Config

from effnet_mm.datasets import DEMO_CLASSES, make_demo_dataset
from effnet_mm.engine import Runner
from effnet_mm.engine.visbackends import TensorboardVisBackend, crc32c
from tests.helpers import ROOT, read_scalars

event_accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator',
                                        reason='the test extra installs tensorboard to read the event files back')

CONFIG = '''
_base_ = [{demo!r}]
classes = {classes!r}
pipeline = [dict(type='LoadImageFromFile'), dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
            dict(type='PackInputs')]
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root={root!r}, data_prefix='train', classes=classes, pipeline=pipeline))
val_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root={root!r}, data_prefix='val', classes=classes, pipeline=pipeline))
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='SingleLabelMetric', average=None)]
model = dict(head=dict(num_classes=2))
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
custom_hooks = []
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
randomness = dict(seed=0)
'''


def _read(event_dir):
    accumulator = event_accumulator.EventAccumulator(event_dir, size_guidance={'scalars': 0, 'tensors': 0})
    accumulator.Reload()
    return accumulator


def test_crc32c_check_value():
    assert crc32c(b'123456789') == 0xE3069283  # the CRC-32C check value (RFC 3720)


def test_training_run_writes_loss_lr_and_accuracy_with_their_steps(tmp_path):
    root = str(tmp_path / 'data')
    make_demo_dataset(root, train_per_class=4, val_per_class=2, size=40)  # 2 classes: 8 training images = 2 iters
    config = tmp_path / 'tb.py'
    config.write_text(CONFIG.format(demo=str(ROOT / 'configs' / 'efficientnet' / 'efficientnet-b0_1xb32_demo.py'),
                                    classes=list(DEMO_CLASSES[:2]), root=root))
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'wd')
    Runner.from_cfg(cfg).train()

    (event_file, ) = glob.glob(str(tmp_path / 'wd' / '*' / 'vis_data' / 'events.out.tfevents.*'))
    events = _read(os.path.dirname(event_file))
    local = read_scalars(tmp_path / 'wd')  # the same scalars from LocalVisBackend
    train = [r for r in local if 'loss' in r]
    val = [r for r in local if 'accuracy/top1' in r]
    assert [r['step'] for r in train] == [1, 2] and [r['step'] for r in val] == [1]
    for tag, records in (('loss', train), ('lr', train), ('accuracy/top1', val)):
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert got == [(r['step'], pytest.approx(r[tag], rel=1e-6)) for r in records], tag
    # per-class lists are not scalars: they are in the log, not in the event file
    assert not any('classwise' in tag for tag in events.Tags()['scalars'])
    assert 'config' in events.Tags()['tensors']
    text = events.Tensors('config')[0].tensor_proto.string_val[0].decode()
    assert "type='TensorboardVisBackend'" in text


def test_scalars_are_flushed_event_by_event(tmp_path):
    backend = TensorboardVisBackend(str(tmp_path))
    backend.add_scalars({'loss': 1.5, 'epoch': 1, 'note': 'skipped'}, step=3)
    backend.add_scalars({'loss': float('nan')}, step=4)  # a diverged loss is recorded, not dropped
    events = _read(str(tmp_path))  # read while the backend is still alive
    assert [(e.step, e.value) for e in events.Scalars('loss')][0] == (3, 1.5)
    assert [e.step for e in events.Scalars('loss')] == [3, 4]
    assert sorted(events.Tags()['scalars']) == ['epoch', 'loss']
