"""Datasets: layouts, classes, and the error messages for broken data (no MindSpore needed)."""
import os

import cv2
import numpy as np
import pytest

from effnet_mm.datasets import CustomDataset, ImageNet, build_dataset
from effnet_mm.registry import DATASETS


def _write_png(path, value=0, size=(6, 5)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.full(size + (3, ), value, np.uint8))


@pytest.fixture
def folder_tree(tmp_path):
    """root/train/{cat: 2 images, dog: 3 images (one nested)}."""
    root = tmp_path / 'set'
    for name in ('c1.png', 'c0.png'):
        _write_png(root / 'train' / 'cat' / name)
    for name in ('d0.png', 'd1.jpg', os.path.join('sub', 'd2.png')):
        _write_png(root / 'train' / 'dog' / name)
    (root / 'train' / 'dog' / 'notes.txt').write_text('not an image')
    return root


def test_class_folders(folder_tree):
    ds = CustomDataset(data_root=str(folder_tree), data_prefix='train')
    assert ds.metainfo['classes'] == ('cat', 'dog')
    assert len(ds) == 5
    assert [os.path.basename(d['img_path']) for d in ds.data_list] == ['c0.png', 'c1.png', 'd0.png', 'd1.jpg',
                                                                      'd2.png']
    assert ds.get_gt_labels().tolist() == [0, 0, 1, 1, 1]
    info = ds.get_data_info(3)
    assert info['sample_idx'] == 3 and info['gt_label'] == 1


def test_explicit_classes_fix_order_and_subset(folder_tree):
    ds = CustomDataset(data_root=str(folder_tree), data_prefix='train', classes=['dog'])
    assert ds.metainfo['classes'] == ('dog', ) and len(ds) == 3 and set(ds.get_gt_labels()) == {0}
    with pytest.raises(FileNotFoundError, match="class folder .*bird"):
        CustomDataset(data_root=str(folder_tree), data_prefix='train', classes=['dog', 'bird'])


def test_registry_and_pipeline(folder_tree):
    ds = build_dataset(dict(type='CustomDataset', data_root=str(folder_tree), data_prefix='train',
                            pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
    assert DATASETS.get('ImageNet') is ImageNet
    out = ds.prepare_data(4, np.random.default_rng(0))
    assert out['inputs'].shape == (3, 6, 5) and out['gt_label'] == 1 and out['sample_idx'] == 4


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        CustomDataset(data_root=str(tmp_path / 'nowhere'))


def test_empty_class_folder_names_the_folder(folder_tree):
    os.makedirs(folder_tree / 'train' / 'emu')
    with pytest.raises(ValueError, match=r'class folder .*emu.* has no images'):
        CustomDataset(data_root=str(folder_tree), data_prefix='train')


def test_no_class_folders(tmp_path):
    (tmp_path / 'flat').mkdir()
    _write_png(tmp_path / 'flat' / 'a.png')
    with pytest.raises(ValueError, match='no class folders'):
        CustomDataset(data_root=str(tmp_path / 'flat'))


def test_annotation_file(folder_tree):
    (folder_tree / 'ann.txt').write_text('cat/c0.png 1\n\ndog/sub/d2.png 0\n')
    ds = CustomDataset(data_root=str(folder_tree), ann_file='ann.txt', data_prefix='train', classes=['a', 'b'])
    assert len(ds) == 2 and ds.get_gt_labels().tolist() == [1, 0]
    assert ds.data_list[1]['img_path'].endswith(os.path.join('dog', 'sub', 'd2.png'))


@pytest.mark.parametrize('line, error, pattern', [
    ('cat/missing.png 0', FileNotFoundError, r'ann.txt:2: image .*missing.png.* not found'),
    ('cat/c0.png 2', ValueError, r'ann.txt:2: label 2 out of range \(expected in \[0, 1\]\)'),
    ('cat/c0.png -1', ValueError, r'ann.txt:2: label -1 out of range'),
    ('cat/c0.png x', ValueError, r"ann.txt:2: label 'x' is not an integer"),
    ('cat/c0.png', ValueError, r'ann.txt:2: expected "<path> <label>"'),
])
def test_annotation_errors_name_file_line_and_value(folder_tree, line, error, pattern):
    (folder_tree / 'ann.txt').write_text(f'cat/c1.png 0\n{line}\n')
    with pytest.raises(error, match=pattern):
        CustomDataset(data_root=str(folder_tree), ann_file='ann.txt', data_prefix='train', classes=['a', 'b'])


def test_missing_annotation_file(folder_tree):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        CustomDataset(data_root=str(folder_tree), ann_file='nope.txt')


def test_skip_corrupt_warns_and_returns_none(folder_tree):
    (folder_tree / 'train' / 'cat' / 'c0.png').write_bytes(b'garbage')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    ds = CustomDataset(data_root=str(folder_tree), data_prefix='train', pipeline=pipeline)
    with pytest.raises(OSError, match='c0.png'):
        ds.prepare_data(0)
    ds = CustomDataset(data_root=str(folder_tree), data_prefix='train', pipeline=pipeline, skip_corrupt=True)
    with pytest.warns(UserWarning, match='c0.png'):
        assert ds.prepare_data(0) is None
    assert ds.prepare_data(1)['gt_label'] == 0


@pytest.fixture
def imagenet_root(tmp_path):
    root = tmp_path / 'imagenet'
    for wnid in ('n01440764', 'n01443537', 'n01484850'):
        for i in range(2):
            _write_png(root / 'train' / wnid / f'{wnid}_{i}.JPEG')
    for i in range(3):
        _write_png(root / 'val' / f'ILSVRC2012_val_{i + 1:08d}.png')
    (root / 'meta').mkdir()
    (root / 'meta' / 'val.txt').write_text(''.join(f'ILSVRC2012_val_{i + 1:08d}.png {i}\n' for i in range(3)))
    return root


def test_imagenet_layouts(imagenet_root):
    train = ImageNet(data_root=str(imagenet_root), split='train')
    assert train.metainfo['classes'] == ('n01440764', 'n01443537', 'n01484850') and len(train) == 6
    val = ImageNet(data_root=str(imagenet_root), split='val')
    assert val.ann_file.endswith(os.path.join('meta', 'val.txt'))
    assert val.metainfo['classes'] == train.metainfo['classes']
    assert val.get_gt_labels().tolist() == [0, 1, 2]


def test_imagenet_val_only_checks_labels_against_1000_classes(imagenet_root):
    import shutil
    shutil.rmtree(imagenet_root / 'train')
    assert len(ImageNet(data_root=str(imagenet_root), split='val').metainfo['classes']) == 1000
    (imagenet_root / 'meta' / 'val.txt').write_text('ILSVRC2012_val_00000001.png 1000\n')
    with pytest.raises(ValueError, match=r'val.txt:1: label 1000 out of range \(expected in \[0, 999\]\)'):
        ImageNet(data_root=str(imagenet_root), split='val')


def test_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='train/<wnid>'):
        ImageNet(data_root=str(tmp_path / 'no_imagenet'), split='train')
    with pytest.raises(ValueError, match='split'):
        ImageNet(data_root=str(tmp_path), split='training')


def test_imagenet_val_class_folders_use_the_train_label_order(imagenet_root):
    (imagenet_root / 'meta' / 'val.txt').unlink()
    for f in (imagenet_root / 'val').iterdir():
        f.unlink()
    _write_png(imagenet_root / 'val' / 'n01484850' / 'a.png')  # only the last class has val images
    val = ImageNet(data_root=str(imagenet_root), split='val')
    assert val.ann_file == ''
    assert val.get_gt_labels().tolist() == [2]
