"""Transforms: TF crop geometry, flips, AutoAugment / RandAugment, RandomErasing, loading and packing (no MindSpore
needed)."""
import math

import cv2
import numpy as np
import pytest

from effnet_mm.datasets.transforms import (
    AutoAugment,
    Compose,
    CorruptImageError,
    EfficientNetCenterCrop,
    EfficientNetRandomCrop,
    LoadImageFromFile,
    PackInputs,
    RandAugment,
    RandomErasing,
    RandomFlip,
    center_crop_box,
)
from effnet_mm.datasets.transforms import augment_ops as F
from effnet_mm.datasets.transforms.auto_augment import POLICY_IMAGENET, POLICY_V0, RANDAUGMENT_OPS
from effnet_mm.registry import TRANSFORMS


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# (height, width, S, crop_padding) -> (crop side, top, left), worked out by hand from TF's
# int(S / (S + pad) * min(h, w)) and offsets ((h - c) + 1) // 2.
@pytest.mark.parametrize('h, w, size, pad, expected', [
    (375, 500, 224, 32, (328, 24, 86)),    # 224/256 * 375 = 328.125
    (224, 224, 224, 32, (196, 14, 14)),
    (600, 400, 380, 32, (368, 116, 16)),   # 380/412 * 400 = 368.93
    (333, 517, 240, 32, (293, 20, 112)),   # 240/272 * 333 = 293.82
    (100, 100, 64, 8, (88, 6, 6)),         # 64/72 * 100 = 88.9
    (101, 300, 600, 32, (95, 3, 103)),     # 600/632 * 101 = 95.89; odd remainders round up
])
def test_center_crop_geometry_matches_tf(h, w, size, pad, expected):
    side, top, left = expected
    assert center_crop_box(h, w, size, pad) == (top, left, side, side)
    img = _image(h, w)
    out = EfficientNetCenterCrop(crop_size=size, crop_padding=pad)({'img': img})
    assert out['img'].shape == (size, size, 3) and out['img'].dtype == np.uint8
    assert out['crop_bbox'] == (top, left, side, side)
    ref = cv2.resize(img[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out['img'], ref)


def test_center_crop_keeps_single_channel_axis():
    out = EfficientNetCenterCrop(crop_size=16)({'img': _image(40, 30)[:, :, :1]})
    assert out['img'].shape == (16, 16, 1)


@pytest.mark.parametrize('h, w', [(300, 400), (500, 120), (64, 64)])
def test_random_crop_respects_area_and_aspect_bounds(h, w):
    crop = EfficientNetRandomCrop(scale=32)
    min_area = max(crop.area_range[0], crop.min_covered) * h * w
    seen_sizes = set()
    for seed in range(400):
        box = crop.sample_box(h, w, np.random.default_rng(seed))
        if box is None:
            continue
        top, left, ch, cw = box
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
        assert min_area <= ch * cw <= h * w
        # width = round(height * aspect): allow the half pixel of that rounding
        assert 3 / 4 - 0.5 / ch <= cw / ch <= 4 / 3 + 0.5 / ch
        seen_sizes.add((ch, cw))
    assert len(seen_sizes) > 50  # really random, not a constant box


def test_random_crop_output_and_determinism():
    crop = EfficientNetRandomCrop(scale=48)
    img = _image(120, 90)
    a = crop({'img': img, 'rng': np.random.default_rng(3)})
    b = crop({'img': img, 'rng': np.random.default_rng(3)})
    assert a['img'].shape == (48, 48, 3) and a['img'].dtype == np.uint8
    assert a['crop_bbox'] == b['crop_bbox'] and np.array_equal(a['img'], b['img'])
    top, left, ch, cw = a['crop_bbox']
    ref = cv2.resize(img[top:top + ch, left:left + cw], (48, 48), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(a['img'], ref)


def test_random_crop_falls_back_to_center_crop_when_every_attempt_fails():
    # A 1:3 image cannot hold a 3/4..4/3 crop covering 90% of it: all 10 attempts fail.
    crop = EfficientNetRandomCrop(scale=32, min_covered=0.9)
    for seed in range(20):
        out = crop({'img': _image(100, 300), 'rng': np.random.default_rng(seed)})
        assert out['crop_fallback'] is True
        assert out['crop_bbox'] == center_crop_box(100, 300, 32, 32)


def test_random_crop_falls_back_when_the_crop_is_the_whole_image():
    crop = EfficientNetRandomCrop(scale=32, area_range=(1.0, 1.0), min_covered=1.0)
    out = crop({'img': _image(80, 80), 'rng': np.random.default_rng(0)})
    assert out['crop_fallback'] is True
    assert out['crop_bbox'] == center_crop_box(80, 80, 32, 32) != (0, 0, 80, 80)


def test_random_crop_rejects_bad_arguments():
    with pytest.raises(ValueError, match='area_range'):
        EfficientNetRandomCrop(scale=32, area_range=(0.5, 0.2))
    with pytest.raises(ValueError, match='interpolation'):
        EfficientNetRandomCrop(scale=32, interpolation='cubic-ish')


def test_random_flip():
    img = _image(10, 12)
    out = RandomFlip(prob=1.0)({'img': img.copy(), 'rng': np.random.default_rng(0)})
    np.testing.assert_array_equal(out['img'], img[:, ::-1])
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    out = RandomFlip(prob=1.0, direction='vertical')({'img': img.copy()})
    np.testing.assert_array_equal(out['img'], img[::-1])
    out = RandomFlip(prob=0.0)({'img': img.copy(), 'rng': np.random.default_rng(0)})
    np.testing.assert_array_equal(out['img'], img)
    flips = [RandomFlip(prob=0.5)({'img': img, 'rng': np.random.default_rng(s)})['flip'] for s in range(200)]
    assert 60 < sum(flips) < 140
    with pytest.raises(ValueError, match='direction'):
        RandomFlip(prob=0.5, direction='sideways')


def test_autoaugment_v0_runs_only_its_25_subpolicies():
    assert len(POLICY_V0) == 25 and all(len(sub) == 2 for sub in POLICY_V0)
    aa = AutoAugment(policies='v0')
    assert aa.hparams == {'pad_val': 128, 'cutout_const': 100, 'translate_const': 250}
    img = _image(40, 40)
    seen = set()
    for seed in range(400):
        out = aa({'img': img, 'rng': np.random.default_rng(seed)})
        index = out['autoaugment_policy']
        names = [op[0] for op in POLICY_V0[index]]
        applied = out['augment_ops']
        # the applied ops are the sub-policy's ops, in order, minus those skipped by their probability
        it = iter(names)
        assert all(name in it for name in applied), (index, applied)
        assert out['img'].shape == img.shape and out['img'].dtype == np.uint8
        seen.add(index)
    assert seen == set(range(25))


def test_autoaugment_probabilities_are_honoured():
    # sub-policy 19 of v0 is [('Equalize', 0.8, 4), ('Equalize', 0.0, 8)]: the second op never runs
    aa = AutoAugment(policies=[POLICY_V0[19]])
    counts = [len(aa({'img': _image(8, 8), 'rng': np.random.default_rng(s)})['augment_ops']) for s in range(300)]
    assert max(counts) == 1 and 0.7 < np.mean(counts) < 0.9


def test_autoaugment_imagenet_policy_and_determinism():
    aa = AutoAugment(policies='imagenet')
    assert len(POLICY_IMAGENET) == 25
    img = _image(32, 32)
    for seed in range(50):
        a = aa({'img': img, 'rng': np.random.default_rng(seed)})
        b = aa({'img': img, 'rng': np.random.default_rng(seed)})
        assert a['autoaugment_policy'] == b['autoaugment_policy']
        np.testing.assert_array_equal(a['img'], b['img'])
    with pytest.raises(ValueError, match="'v0', 'imagenet'"):
        AutoAugment(policies='v9')


def test_randaugment_applies_num_policies_ops():
    ra = RandAugment(num_policies=2, magnitude_level=17)
    assert ra.hparams == {'pad_val': 128, 'cutout_const': 40, 'translate_const': 100}
    seen = set()
    for seed in range(200):
        out = ra({'img': _image(24, 24), 'rng': np.random.default_rng(seed)})
        assert len(out['augment_ops']) == 2 and set(out['augment_ops']) <= set(RANDAUGMENT_OPS)
        seen.update(out['augment_ops'])
    assert seen == set(RANDAUGMENT_OPS)


def test_pixel_ops():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    np.testing.assert_array_equal(F.invert(img), 255 - img)
    np.testing.assert_array_equal(F.solarize(img, 128), np.where(img < 128, img, 255 - img))
    np.testing.assert_array_equal(F.posterize(img, 2), img & 0b11000000)
    np.testing.assert_array_equal(F.posterize(img, 0), img & 0b10000000)  # TF clamps the shift to 7
    np.testing.assert_array_equal(F.solarize_add(img, 30)[0, :3, 0], [30, 31, 32])
    assert F.solarize_add(img, 30)[15, 15, 0] == 255  # >= threshold: untouched
    np.testing.assert_array_equal(F.equalize(img), img)  # a flat histogram is already equalised
    flat = np.full((4, 4, 3), 77, np.uint8)
    np.testing.assert_array_equal(F.equalize(flat), flat)
    np.testing.assert_array_equal(F.auto_contrast(flat), flat)
    low = (img // 4 + 10).astype(np.uint8)  # values 10..73
    stretched = F.auto_contrast(low)
    # TF's float32 im * scale + offset truncates 254.99998 to 254 for the maximum
    assert stretched.min() == 0 and stretched.max() == 254
    np.testing.assert_array_equal(F.auto_contrast(img), img)
    # TF blend truncates when interpolating: 0 + 0.5 * (255 - 0) = 127.5 -> 127
    assert F.brightness(np.full((2, 2, 3), 255, np.uint8), 0.5)[0, 0, 0] == 127
    assert F.brightness(np.full((2, 2, 3), 200, np.uint8), 1.5)[0, 0, 0] == 255  # extrapolation clips
    gray = F.color(_image(8, 8), 0.0)
    assert np.all(gray[:, :, 0] == gray[:, :, 1]) and np.all(gray[:, :, 1] == gray[:, :, 2])


def test_geometric_ops():
    img = _image(9, 9)
    np.testing.assert_array_equal(F.rotate(img, 90.0), np.rot90(img))  # counter-clockwise
    np.testing.assert_array_equal(F.rotate(img, 0.0), img)
    moved = F.translate_x(img, 3, fill=128)
    np.testing.assert_array_equal(moved[:, :6], img[:, 3:])
    assert np.all(moved[:, 6:] == 128)
    moved = F.translate_y(img, -2, fill=(1, 2, 3))
    np.testing.assert_array_equal(moved[2:], img[:-2])
    assert np.all(moved[:2] == [1, 2, 3])
    sheared = F.shear_x(img, 1.0, fill=0)
    np.testing.assert_array_equal(sheared[2, :7], img[2, 2:])  # out(x, y) = img(x + y, y)
    cut = F.cutout(np.zeros((50, 50, 3), np.uint8), 5, np.random.default_rng(0), fill=128)
    assert 0 < (cut[:, :, 0] == 128).sum() <= 100


def timm_random_erasing(img, rng, probability, min_area, max_area, min_aspect, max_aspect, min_count, max_count,
                        fill):
    """timm's ``RandomErasing._erase`` (timm/data/random_erasing.py) transcribed for an HWC image: Python's
    ``random.random / uniform / randint(a, b)`` are drawn from ``rng``; ``fill(h, w)`` makes the patch."""
    img = img.copy()
    if rng.random() > probability:
        return img
    img_h, img_w = img.shape[:2]
    area = img_h * img_w
    count = min_count if min_count == max_count else int(rng.integers(min_count, max_count + 1))
    log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
    for _ in range(count):
        for _attempt in range(10):
            target_area = rng.uniform(min_area, max_area) * area / count
            aspect_ratio = math.exp(rng.uniform(*log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < img_w and h < img_h:
                top = int(rng.integers(0, img_h - h + 1))
                left = int(rng.integers(0, img_w - w + 1))
                img[top:top + h, left:left + w] = fill(h, w)
                break
    return img


@pytest.mark.parametrize('mode, count', [('const', (1, 1)), ('rand', (1, 3)), ('rand_uniform', (2, 2))])
def test_random_erasing_follows_timm(mode, count):
    mean, std = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)
    kwargs = dict(erase_prob=0.7, min_area_ratio=0.02, max_area_ratio=1 / 3, aspect_range=(0.3, 1 / 0.3),
                  min_count=count[0], max_count=count[1])
    if mode == 'const':
        transform = RandomErasing(mode='const', fill_color=mean, **kwargs)
        fill = lambda rng: lambda h, w: np.array([104, 116, 124], np.uint8)  # noqa: E731 - rounded mean
    elif mode == 'rand':
        transform = RandomErasing(mode='rand', fill_color=mean, fill_std=std, **kwargs)
        fill = lambda rng: lambda h, w: np.clip(np.rint(rng.normal(mean, std, (h, w, 3))), 0, 255)  # noqa: E731
    else:
        transform = RandomErasing(mode='rand', **kwargs)
        fill = lambda rng: lambda h, w: rng.integers(0, 256, (h, w, 3))  # noqa: E731
    img = _image(48, 64)
    erased = 0
    for seed in range(40):
        out = transform({'img': img, 'rng': np.random.default_rng(seed)})
        rng = np.random.default_rng(seed)
        expected = timm_random_erasing(img, rng, 0.7, 0.02, 1 / 3, 0.3, 1 / 0.3, count[0], count[1], fill(rng))
        np.testing.assert_array_equal(out['img'], expected)
        erased += bool(out['erased_boxes'])
        for _, _, h, w in out['erased_boxes']:
            assert h < 48 and w < 64 and 0.3 / 2 <= h / w <= 2 / 0.3  # log-uniform aspect (rounding widens it)
    assert 20 <= erased <= 38  # about 70 % of the images are erased
    assert transform({'img': img, 'rng': np.random.default_rng(0)})['img'].dtype == np.uint8


def test_random_erasing_arguments_and_probability_edges():
    img = _image(20, 20)
    assert RandomErasing(erase_prob=0.0)({'img': img, 'rng': np.random.default_rng(0)})['erased_boxes'] == []
    out = RandomErasing(erase_prob=1.0, fill_color=0)({'img': img, 'rng': np.random.default_rng(0)})
    (top, left, h, w), = out['erased_boxes']
    assert (out['img'][top:top + h, left:left + w] == 0).all() and (img == _image(20, 20)).all()  # input untouched
    assert TRANSFORMS.get('RandomErasing') is RandomErasing
    for bad in (dict(erase_prob=2), dict(mode='pixel'), dict(min_area_ratio=0.5, max_area_ratio=0.4),
                dict(aspect_range=(2, 1)), dict(min_count=2, max_count=1)):
        with pytest.raises(ValueError, match='RandomErasing'):
            RandomErasing(**bad)


def test_load_image_from_file(tmp_path):
    img = _image(20, 30)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    out = LoadImageFromFile()({'img_path': str(tmp_path / 'a.png')})
    np.testing.assert_array_equal(out['img'], img)
    assert out['img_shape'] == (20, 30) == out['ori_shape']
    (tmp_path / 'bad.jpg').write_bytes(b'this is not a jpeg')
    with pytest.raises(CorruptImageError, match='bad.jpg'):
        LoadImageFromFile()({'img_path': str(tmp_path / 'bad.jpg')})
    data = (tmp_path / 'a.png').read_bytes()
    (tmp_path / 'truncated.png').write_bytes(data[:40])
    with pytest.raises(CorruptImageError, match='truncated.png'):
        LoadImageFromFile()({'img_path': str(tmp_path / 'truncated.png')})
    with pytest.raises(FileNotFoundError, match='missing.png'):
        LoadImageFromFile()({'img_path': str(tmp_path / 'missing.png')})


def test_pipeline_from_config_packs_chw_uint8(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), _image(50, 40))
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='EfficientNetRandomCrop', scale=24),
        dict(type='RandomFlip', prob=0.5),
        dict(type='AutoAugment', policies='v0'),
        dict(type='RandAugment', num_policies=2, magnitude_level=9),
        dict(type='PackInputs'),
    ])
    out = pipeline({'img_path': str(tmp_path / 'a.png'), 'gt_label': 3, 'sample_idx': 7,
                    'rng': np.random.default_rng(0)})
    assert set(out) == {'inputs', 'gt_label', 'sample_idx'}
    assert out['inputs'].shape == (3, 24, 24) and out['inputs'].dtype == np.uint8
    assert out['inputs'].flags['C_CONTIGUOUS']
    assert out['gt_label'] == 3 and out['sample_idx'] == 7
    for name in ('LoadImageFromFile', 'EfficientNetRandomCrop', 'EfficientNetCenterCrop', 'RandomFlip',
                 'AutoAugment', 'RandAugment', 'PackInputs'):
        assert TRANSFORMS.get(name) is not None
    packed = PackInputs()({'img': _image(5, 6)[:, :, 0], 'gt_label': 1, 'sample_idx': 0})
    assert packed['inputs'].shape == (1, 5, 6)


def test_resize_edge_and_center_crop_follow_mmpretrain_and_torchvision():
    """Resize-then-crop evaluation (timm, MindCV, MindSpore model zoo): short edge to S, long edge truncated,
    centre offsets rounded."""
    from effnet_mm.datasets.transforms import CenterCrop, ResizeEdge
    img = np.arange(300 * 401 * 3, dtype=np.uint32).reshape(300, 401, 3).astype(np.uint8)
    out = ResizeEdge(256, edge='short', interpolation='bicubic')({'img': img})
    assert out['img'].shape == (256, int(256 * 401 / 300), 3)  # 342: truncated, not rounded
    expected = cv2.resize(img, (342, 256), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out['img'], expected)
    assert ResizeEdge(100, edge='long')({'img': img})['img'].shape == (74, 100, 3)
    crop = CenterCrop(224)(out)
    assert crop['img'].shape == (224, 224, 3) and crop['crop_bbox'] == (16, 59, 224, 224)  # round(118 / 2) = 59
    np.testing.assert_array_equal(crop['img'], expected[16:240, 59:283])
    with pytest.raises(ValueError, match='smaller than the crop'):
        CenterCrop(500)({'img': img})
    with pytest.raises(ValueError, match='edge must be one of'):
        ResizeEdge(256, edge='diagonal')
