"""build_dataloader: the Loaders contract of docs/design.md (order, sharding, determinism, corrupt images)."""
import os

import cv2
import numpy as np
import pytest

from effnet_mm.datasets import build_dataloader, epoch_indices

NUM_SAMPLES = 23  # not divisible by the batch sizes or shard counts used below


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('loader_data')
    rng = np.random.default_rng(0)
    for i in range(NUM_SAMPLES):
        folder = root / f'class{i % 3}'
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(str(folder / f'{i:03d}.png'), rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    return root


def _cfg(root, shuffle, batch_size=4, num_workers=2, skip_corrupt=False, **extra):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='EfficientNetRandomCrop', scale=8),
                dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')]
    return dict(batch_size=batch_size, num_workers=num_workers, sampler=dict(type='DefaultSampler', shuffle=shuffle),
                dataset=dict(type='CustomDataset', data_root=str(root), pipeline=pipeline, skip_corrupt=skip_corrupt),
                **extra)


def _epoch(loader, epoch=0):
    loader.set_epoch(epoch)
    return list(loader)


def _ids(batches):
    return np.concatenate([b['sample_idx'] for b in batches]).tolist() if batches else []


def test_batch_format_and_eval_count(data_root):
    loader = build_dataloader(_cfg(data_root, shuffle=False))
    batches = _epoch(loader)
    assert len(loader) == len(batches) == 6  # ceil(23 / 4), last batch partial
    assert [len(b['gt_label']) for b in batches] == [4, 4, 4, 4, 4, 3]
    b = batches[0]
    assert b['inputs'].dtype == np.uint8 and b['inputs'].shape == (4, 3, 8, 8)
    assert b['gt_label'].dtype == np.int32 and b['sample_idx'].dtype == np.int64
    assert _ids(batches) == list(range(NUM_SAMPLES))
    labels = loader.dataset.get_gt_labels()
    assert np.concatenate([b['gt_label'] for b in batches]).tolist() == labels.tolist()
    assert loader.dataset.metainfo['classes'] == ('class0', 'class1', 'class2')


@pytest.mark.parametrize('num_shards', [2, 3])
def test_eval_shards_cover_every_sample_exactly_once(data_root, num_shards):
    seen = []
    for shard in range(num_shards):
        loader = build_dataloader(_cfg(data_root, shuffle=False, batch_size=5), shard_id=shard,
                                  num_shards=num_shards)
        ids = _ids(_epoch(loader))
        assert len(loader) == -(-len(ids) // 5)
        seen += ids
    assert sorted(seen) == list(range(NUM_SAMPLES))


def test_train_shards_are_disjoint_padded_and_drop_last(data_root):
    shards = [build_dataloader(_cfg(data_root, shuffle=True, batch_size=3), seed=5, shard_id=s, num_shards=2)
              for s in range(2)]
    # 23 samples are padded to 24, 12 per shard; drop_last keeps 4 full batches of 3
    assert [len(s) for s in shards] == [4, 4]
    for s in shards:
        batches = _epoch(s, epoch=1)
        assert len(batches) == 4 and all(len(b['sample_idx']) == 3 for b in batches)
    full = [epoch_indices(NUM_SAMPLES, shuffle=True, seed=5, epoch=1, shard_id=s, num_shards=2) for s in range(2)]
    union = np.concatenate(full)
    assert len(union) == 24 and set(union.tolist()) == set(range(NUM_SAMPLES))
    assert _ids(_epoch(shards[0], epoch=1)) == full[0][:12].tolist()


def test_order_is_a_function_of_seed_and_epoch(data_root):
    a = build_dataloader(_cfg(data_root, shuffle=True, num_workers=1), seed=3)
    b = build_dataloader(_cfg(data_root, shuffle=True, num_workers=2), seed=3)
    e0a, e0b = _epoch(a, 0), _epoch(b, 0)
    assert _ids(e0a) == _ids(e0b)
    for x, y in zip(e0a, e0b):  # same augmentation whatever the number of workers
        np.testing.assert_array_equal(x['inputs'], y['inputs'])
        np.testing.assert_array_equal(x['gt_label'], y['gt_label'])
    e1 = _epoch(a, 1)
    assert _ids(e1) != _ids(e0a) and sorted(_ids(e1)) != _ids(e1)
    assert _ids(_epoch(a, 0)) == _ids(e0a)  # going back to epoch 0 replays it
    c = build_dataloader(_cfg(data_root, shuffle=True), seed=4)
    assert _ids(_epoch(c, 0)) != _ids(e0a)


def test_process_workers_match_thread_workers(data_root):
    threads = _epoch(build_dataloader(_cfg(data_root, shuffle=True)), 2)
    procs = _epoch(build_dataloader(_cfg(data_root, shuffle=True, multiprocessing=True)), 2)
    assert _ids(threads) == _ids(procs)
    for x, y in zip(threads, procs):
        np.testing.assert_array_equal(x['inputs'], y['inputs'])


@pytest.fixture
def corrupt_root(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(7):
        os.makedirs(tmp_path / 'c', exist_ok=True)
        cv2.imwrite(str(tmp_path / 'c' / f'{i}.png'), rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    (tmp_path / 'c' / '3.png').write_bytes(b'\x89PNG broken')
    return tmp_path


def test_corrupt_image_raises_naming_the_file(corrupt_root):
    loader = build_dataloader(_cfg(corrupt_root, shuffle=False, num_workers=1))
    # MindSpore re-raises errors of the Python source as RuntimeError carrying the original message
    with pytest.raises(RuntimeError, match=r'CorruptImageError: cannot decode image file .*3\.png'):
        _epoch(loader)


def test_corrupt_image_skipped_with_skip_corrupt(corrupt_root):
    loader = build_dataloader(_cfg(corrupt_root, shuffle=False, batch_size=2, skip_corrupt=True))
    with pytest.warns(UserWarning, match=r'3\.png'):
        batches = _epoch(loader)
    assert _ids(batches) == [0, 1, 2, 4, 5, 6]
    assert [len(b['sample_idx']) for b in batches] == [2, 2, 2]


def test_config_errors(data_root):
    with pytest.raises(ValueError, match='unknown keys'):
        build_dataloader(dict(_cfg(data_root, shuffle=True), shuffle=True))
    with pytest.raises(ValueError, match='never drop'):
        build_dataloader(_cfg(data_root, shuffle=False, drop_last=True))
    with pytest.raises(ValueError, match='DefaultSampler'):
        build_dataloader(dict(_cfg(data_root, shuffle=True), sampler=dict(type='InfiniteSampler')))
    with pytest.raises(ValueError, match='shard_id'):
        build_dataloader(_cfg(data_root, shuffle=True), shard_id=2, num_shards=2)
