"""Datasets: layouts, classes, and the error messages for broken data (no MindSpore needed)."""
import hashlib
import os

import cv2
import numpy as np
import pytest

from effnet_mm.datasets import (
    DEMO_CLASSES,
    IMAGENET_CATEGORIES,
    IMAGENET_WNIDS,
    CorruptImageError,
    CustomDataset,
    ImageNet,
    build_dataset,
    default_metainfo,
)
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


def test_prepare_data_raises_for_a_broken_image_and_skipping_is_the_loaders_job(folder_tree):
    (folder_tree / 'train' / 'cat' / 'c0.png').write_bytes(b'garbage')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    for skip in (False, True):
        ds = CustomDataset(data_root=str(folder_tree), data_prefix='train', pipeline=pipeline, skip_corrupt=skip)
        with pytest.raises(CorruptImageError, match='c0.png: not an image'):
            ds.prepare_data(0)
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
    assert train.metainfo['classes'] == IMAGENET_CATEGORIES and len(train) == 6
    assert train.get_gt_labels().tolist() == [0, 0, 1, 1, 2, 2]
    val = ImageNet(data_root=str(imagenet_root), split='val')
    assert val.ann_file.endswith(os.path.join('meta', 'val.txt'))
    assert val.metainfo['classes'] == IMAGENET_CATEGORIES
    assert val.get_gt_labels().tolist() == [0, 1, 2]


def test_imagenet_class_folders_get_the_standard_labels(imagenet_root):
    """A subset of the wnid folders keeps the labels of the released checkpoints (label = index of the wnid)."""
    for wnid in ('n02123045', 'n15075141', '.ipynb_checkpoints'):
        _write_png(imagenet_root / 'train' / wnid / 'x.JPEG')
    train = ImageNet(data_root=str(imagenet_root), split='train')
    assert sorted(set(train.get_gt_labels().tolist())) == [0, 1, 2, 281, 999]
    names = train.metainfo['classes']
    assert names[281] == 'tabby, tabby cat' and names[999] == 'toilet tissue, toilet paper, bathroom tissue'
    _write_png(imagenet_root / 'train' / 'cats' / 'y.png')
    with pytest.raises(ValueError, match=r"1 class folder\(s\) of .* are not ImageNet-1k WordNet ids: \['cats'\]"):
        ImageNet(data_root=str(imagenet_root), split='train')
    custom = ImageNet(data_root=str(imagenet_root), split='train', classes=['cats', 'n02123045'])
    assert custom.metainfo['classes'] == ('cats', 'n02123045') and custom.get_gt_labels().tolist() == [0, 1]


def test_imagenet_categories_module():
    assert len(IMAGENET_WNIDS) == len(IMAGENET_CATEGORIES) == 1000
    assert list(IMAGENET_WNIDS) == sorted(set(IMAGENET_WNIDS))  # the standard order: sorted, unique wnids
    assert IMAGENET_WNIDS[0] == 'n01440764' and IMAGENET_CATEGORIES[0] == 'tench, Tinca tinca'
    assert IMAGENET_CATEGORIES[1] == 'goldfish, Carassius auratus' and IMAGENET_WNIDS[-1] == 'n15075141'
    assert IMAGENET_CATEGORIES[134] == IMAGENET_CATEGORIES[517] == 'crane'  # the bird and the machine
    # The lists as checked against two published sources (mmpretrain's categories and timm's synset/lemma files);
    # any edit changes these digests.
    digest = [hashlib.sha256('\n'.join(names).encode()).hexdigest()[:16]
              for names in (IMAGENET_WNIDS, IMAGENET_CATEGORIES)]
    assert digest == ['385e0240499426c0', 'a40d9be82eb4738b']
    assert default_metainfo('ImageNet')['classes'] == IMAGENET_CATEGORIES
    assert default_metainfo('DemoDataset')['classes'] == DEMO_CLASSES
    assert default_metainfo('CustomDataset') == {} and default_metainfo('NoSuchDataset') == {}


def test_imagenet_val_only_checks_labels_against_1000_classes(imagenet_root):
    import shutil
    shutil.rmtree(imagenet_root / 'train')
    assert ImageNet(data_root=str(imagenet_root), split='val').metainfo['classes'] == IMAGENET_CATEGORIES
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
