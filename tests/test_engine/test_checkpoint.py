"""Training checkpoints are atomic: a save that dies mid-way never replaces the previous good file or pointer."""
import os

import mindspore as ms
import pytest

from effnet_mm.engine.hooks import CheckpointHook
from effnet_mm.utils import load_checkpoint
from tests.test_engine.tiny_run import make_runner


def test_killed_save_keeps_previous_checkpoint_and_pointer(tmp_path, monkeypatch):
    runner = make_runner(tmp_path / 'wd', max_epochs=1)
    runner.train()
    path = str(tmp_path / 'wd' / 'epoch_1.ckpt')
    pointer = tmp_path / 'wd' / 'last_checkpoint'
    before_bytes = open(path, 'rb').read()
    before_pointer = pointer.read_text()

    real_save = ms.save_checkpoint

    def dying_save(entries, file_name, *args, **kwargs):
        # Write half a file where MindSpore writes, then die like a killed process would.
        real_save(entries, file_name, *args, **kwargs)
        with open(file_name, 'r+b') as f:
            f.truncate(os.path.getsize(file_name) // 2)
        raise KeyboardInterrupt('killed during save')

    monkeypatch.setattr(ms, 'save_checkpoint', dying_save)
    runner.epoch = 1
    with pytest.raises(KeyboardInterrupt):
        runner.get_hook(CheckpointHook).after_epoch(runner)
    monkeypatch.undo()

    assert open(path, 'rb').read() == before_bytes
    assert pointer.read_text() == before_pointer
    params, meta = load_checkpoint(path)
    assert meta['epoch'] == '1'
    assert 'online.head.fc.bias' in params and 'mean_square.head.fc.bias' in params
    assert not [f for f in os.listdir(tmp_path / 'wd') if f.endswith('.tmp.ckpt') or f.endswith('.tmp')]


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    bad = tmp_path / 'bad.ckpt'
    bad.write_bytes(b'\n\x05trunc')
    runner = make_runner(tmp_path / 'wd', max_epochs=1, resume=str(bad))
    with pytest.raises(ValueError, match='cannot be read'):
        runner.train()
