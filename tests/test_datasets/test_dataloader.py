"""build_dataloader: the Loaders contract of docs/design.md (order, sharding, determinism, corrupt images)."""
import os

import cv2
import numpy as np
import pytest

from effnet_mm.datasets import CorruptImageError, build_dataloader, epoch_indices

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
    """7 images in one class folder; 3.png is broken."""
    rng = np.random.default_rng(1)
    os.makedirs(tmp_path / 'c')
    for i in range(7):
        cv2.imwrite(str(tmp_path / 'c' / f'{i}.png'), rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    (tmp_path / 'c' / '3.png').write_bytes(b'\x89PNG broken')
    return tmp_path


@pytest.mark.parametrize('shuffle, multiprocessing', [(False, False), (True, False), (False, True)])
def test_corrupt_image_raises_its_own_one_line_error(corrupt_root, shuffle, multiprocessing):
    loader = build_dataloader(_cfg(corrupt_root, shuffle=shuffle, batch_size=2, multiprocessing=multiprocessing))
    # Not MindSpore's RuntimeError with a C++ traceback: the loader re-raises the sample's error in this thread.
    with pytest.raises(CorruptImageError) as info:
        _epoch(loader)
    message = str(info.value)
    assert '\n' not in message and message.startswith('cannot decode image ') and '3.png: not an image' in message


def test_pipeline_bug_is_raised_as_itself(corrupt_root):
    cfg = _cfg(corrupt_root, shuffle=False, skip_corrupt=True)
    cfg['dataset']['pipeline'].insert(1, dict(type='EfficientNetCenterCrop', crop_size=0))  # not a data problem
    with pytest.raises(ValueError, match='crop_size must be a positive int'):
        build_dataloader(cfg)
    loader = build_dataloader(_cfg(corrupt_root, shuffle=False, skip_corrupt=True))
    loader.dataset.pipeline.transforms.insert(1, lambda results: results['no_such_key'])
    with pytest.raises(KeyError, match='no_such_key'):  # skip_corrupt never hides bugs
        _epoch(loader)


def test_skip_corrupt_evaluation_leaves_out_and_reports_every_epoch(corrupt_root):
    loader = build_dataloader(_cfg(corrupt_root, shuffle=False, batch_size=2, skip_corrupt=True))
    assert len(loader) == 4 and loader.num_samples == 7
    for epoch in (0, 1):  # reported again in the second epoch
        batches = _epoch(loader, epoch)
        assert _ids(batches) == [0, 1, 2, 4, 5, 6]  # nothing invented
        assert [len(b['sample_idx']) for b in batches] == [2, 2, 2]
        assert len(loader.skipped) == 1
        skipped = loader.skipped[0]
        assert skipped.sample_idx == 3 and skipped.img_path.endswith('3.png')
        assert skipped.reason.startswith('not an image')
        message = loader.skipped_message()
        assert message.startswith(f'epoch {epoch}: skipped 1 of 7 samples') and '3.png: not an image' in message


def test_skip_corrupt_at_the_end_of_an_evaluation_epoch(corrupt_root):
    (corrupt_root / 'c' / '6.png').write_bytes(b'')
    loader = build_dataloader(_cfg(corrupt_root, shuffle=False, batch_size=2, skip_corrupt=True))
    assert _ids(_epoch(loader)) == [0, 1, 2, 4, 5]
    assert [(s.sample_idx, s.reason) for s in loader.skipped][1] == (6, 'empty file (0 bytes)')


@pytest.mark.parametrize('num_workers, multiprocessing', [(1, False), (2, True)])
def test_skip_corrupt_training_refetches_deterministically(corrupt_root, num_workers, multiprocessing):
    for name in ('1.png', '5.png'):
        (corrupt_root / 'c' / name).write_bytes((corrupt_root / 'c' / '0.png').read_bytes()[:30])
    reference = build_dataloader(_cfg(corrupt_root, shuffle=True, batch_size=3, num_workers=2, skip_corrupt=True),
                                 seed=1)
    loader = build_dataloader(_cfg(corrupt_root, shuffle=True, batch_size=3, num_workers=num_workers,
                                   skip_corrupt=True, multiprocessing=multiprocessing), seed=1)
    for epoch in (0, 1):
        batches = _epoch(loader, epoch)
        # The announced length holds: every position got a sample (a replacement for the broken ones).
        assert len(batches) == len(loader) == 2 and all(len(b['sample_idx']) == 3 for b in batches)
        ids = _ids(batches)
        assert not {1, 3, 5} & set(ids)
        broken = [i for i in loader.indices()[:6].tolist() if i in (1, 3, 5)]
        # each broken sample is reported, and so is a replacement that is broken too
        assert broken and loader.skipped[0].sample_idx == broken[0]
        assert set(broken) <= {s.sample_idx for s in loader.skipped} <= {1, 3, 5}
        assert {s.reason.split(':')[0] for s in loader.skipped} <= {'not an image', 'truncated PNG'}
        same = _epoch(reference, epoch)  # independent of the workers
        assert _ids(same) == ids and [s.sample_idx for s in reference.skipped] == [s.sample_idx for s in
                                                                                 loader.skipped]
        for x, y in zip(batches, same):
            np.testing.assert_array_equal(x['inputs'], y['inputs'])


def test_skip_corrupt_training_gives_up_when_nothing_loads(tmp_path):
    os.makedirs(tmp_path / 'c')
    for i in range(3):
        (tmp_path / 'c' / f'{i}.png').write_bytes(b'')
    cfg = _cfg(tmp_path, shuffle=True, batch_size=1, skip_corrupt=True)
    cfg['dataset']['max_refetch'] = 4
    with pytest.raises(RuntimeError, match=r'its 4 replacements all failed to load .* empty file'):
        _epoch(build_dataloader(cfg))


def test_config_errors(data_root):
    with pytest.raises(ValueError, match='unknown keys'):
        build_dataloader(dict(_cfg(data_root, shuffle=True), shuffle=True))
    with pytest.raises(ValueError, match='never drop'):
        build_dataloader(_cfg(data_root, shuffle=False, drop_last=True))
    with pytest.raises(ValueError, match='DefaultSampler'):
        build_dataloader(dict(_cfg(data_root, shuffle=True), sampler=dict(type='InfiniteSampler')))
    with pytest.raises(ValueError, match='shard_id'):
        build_dataloader(_cfg(data_root, shuffle=True), shard_id=2, num_shards=2)
