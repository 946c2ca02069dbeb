"""The embedded demo dataset: deterministic, atomic generation and the registered DemoDataset."""
import hashlib
import json
import os

import numpy as np
import pytest

from effnet_mm.datasets import DEMO_CLASSES, DemoDataset, build_dataset, make_demo_dataset
from effnet_mm.datasets.demo_generator import draw_demo_image


def _digest(root):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_generation_is_deterministic(tmp_path):
    kwargs = dict(train_per_class=3, val_per_class=1)
    make_demo_dataset(str(tmp_path / 'a'), seed=7, **kwargs)
    make_demo_dataset(str(tmp_path / 'b'), seed=7, **kwargs)
    make_demo_dataset(str(tmp_path / 'c'), seed=8, **kwargs)
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b') != _digest(tmp_path / 'c')
    assert sorted(os.listdir(tmp_path / 'a' / 'train')) == list(DEMO_CLASSES)
    assert len(os.listdir(tmp_path / 'a' / 'val' / 'star')) == 1
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'c']  # no temporary folders left behind


def test_images_vary_within_a_class():
    imgs = [draw_demo_image(3, np.random.default_rng([0, i])) for i in range(2)]
    assert imgs[0].shape == (72, 72, 3) and imgs[0].dtype == np.uint8
    assert np.abs(imgs[0].astype(int) - imgs[1].astype(int)).mean() > 20


def test_existing_folder_is_kept_and_foreign_folder_rejected(tmp_path):
    root = tmp_path / 'demo'
    meta = make_demo_dataset(str(root), train_per_class=2, val_per_class=1)
    assert make_demo_dataset(str(root), seed=99) == meta  # already there: not regenerated
    (tmp_path / 'other').mkdir()
    with pytest.raises(FileExistsError, match='not a complete demo dataset'):
        DemoDataset(data_root=str(tmp_path / 'other'))


def test_stale_generator_version_is_reported(tmp_path):
    root = tmp_path / 'demo'
    make_demo_dataset(str(root), train_per_class=1, val_per_class=1)
    meta_path = root / 'meta.json'
    meta = json.loads(meta_path.read_text())
    meta['version'] -= 1
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match='delete the folder to regenerate'):
        assert len(DemoDataset(data_root=str(root), split='val')) == 10


def test_demo_dataset_generates_on_first_use(tmp_path):
    root = tmp_path / 'data' / 'effnet_demo'
    train = build_dataset(dict(type='DemoDataset', data_root=str(root), split='train',
                               pipeline=[dict(type='LoadImageFromFile'),
                                         dict(type='EfficientNetCenterCrop', crop_size=64, crop_padding=8),
                                         dict(type='PackInputs')]))
    val = DemoDataset(data_root=str(root), split='val')
    assert len(train) == 3000 and len(val) == 500
    assert train.metainfo['classes'] == DEMO_CLASSES == val.metainfo['classes']
    assert np.bincount(val.get_gt_labels()).tolist() == [50] * 10
    out = train.prepare_data(0, np.random.default_rng(0))
    assert out['inputs'].shape == (3, 64, 64)
    assert os.listdir(root.parent) == ['effnet_demo']
    with pytest.raises(ValueError, match='split'):
        DemoDataset(data_root=str(root), split='test')
