"""Closed-form LR schedules: exact values, mmengine begin/end/by_epoch/convert_to_iter_based semantics."""
import math

import pytest

from effnet_mm.engine.schedulers import LRSchedule

E = 10  # iterations per epoch


def lrs(base, schedulers, n, epoch_length=E):
    schedule = LRSchedule(base, schedulers, epoch_length)
    return [schedule.lr_at(i) for i in range(n)]


def test_constant_without_schedulers():
    assert lrs(0.1, [], 3) == [0.1, 0.1, 0.1]


def test_linear_warmup_iter_based_reaches_end_factor_at_end_minus_one():
    values = lrs(1.0, [dict(type='LinearLR', start_factor=0.0, by_epoch=True, begin=0, end=1,
                            convert_to_iter_based=True)], 12)
    # mmengine: total_iters = end - begin - 1 = 9
    assert values[:10] == pytest.approx([i / 9 for i in range(10)])
    assert values[10:] == [1.0, 1.0]


def test_linear_epoch_based_changes_only_at_epoch_boundaries():
    values = lrs(1.0, [dict(type='LinearLR', start_factor=0.5, by_epoch=True, begin=0, end=3)], 40)
    assert values[0:10] == [0.5] * 10
    assert values[10:20] == [0.75] * 10
    assert values[20:] == [1.0] * 20


def test_tf_staircase_decay_every_2_4_epochs():
    values = lrs(0.128, [dict(type='StepLR', step_size=2.4, gamma=0.97, by_epoch=True, begin=0,
                              convert_to_iter_based=True)], 100)
    expected = [0.128 * 0.97**math.floor(i / 24) for i in range(100)]
    assert values == pytest.approx(expected, rel=1e-12)
    assert values[23] == pytest.approx(0.128) and values[24] == pytest.approx(0.128 * 0.97)


def test_tf_recipe_product_after_warmup():
    schedulers = [
        dict(type='LinearLR', start_factor=0.0, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
        dict(type='StepLR', step_size=2.4, gamma=0.97, by_epoch=True, begin=0, convert_to_iter_based=True),
    ]
    values = lrs(0.016, schedulers, 200)
    assert values[0] == 0.0
    for i in range(50, 200):
        assert values[i] == pytest.approx(0.016 * 0.97**math.floor(i / 24), rel=1e-12)


def test_multistep_epoch_based():
    values = lrs(0.1, [dict(type='MultiStepLR', by_epoch=True, milestones=[2, 4], gamma=0.1)], 60)
    assert values[19] == pytest.approx(0.1)
    assert values[20] == pytest.approx(0.01)
    assert values[39] == pytest.approx(0.01)
    assert values[40] == pytest.approx(0.001)


def test_multistep_iteration_based():
    values = lrs(1.0, [dict(type='MultiStepLR', by_epoch=False, milestones=[3, 5], gamma=0.5)], 7)
    assert values == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_cosine_after_warmup_with_eta_min():
    schedulers = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=0.001, by_epoch=True, begin=1, end=5, convert_to_iter_based=True),
    ]
    values = lrs(0.1, schedulers, 60)
    assert values[0] == pytest.approx(0.01)
    for i in range(10, 50):
        t = i - 10
        assert values[i] == pytest.approx(0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 40)) / 2, rel=1e-12)
    # After end the last value is kept.
    assert values[55] == pytest.approx(values[49])


def test_cosine_eta_min_ratio_epoch_based():
    values = lrs(2.0, [dict(type='CosineAnnealingLR', T_max=4, eta_min_ratio=0.5, by_epoch=True)], 50)
    assert values[0] == pytest.approx(2.0)
    assert values[20] == pytest.approx(2.0 * (0.5 + 0.5 * (1 + math.cos(math.pi / 2)) / 2))
    assert values[49] == pytest.approx(1.0)


def test_exponential_and_constant():
    assert lrs(1.0, [dict(type='ExponentialLR', gamma=0.5, by_epoch=False)], 3) == [1.0, 0.5, 0.25]
    assert lrs(1.0, [dict(type='ConstantLR', factor=0.5, by_epoch=False, begin=1, end=3)], 4) == [1.0, 0.5, 0.5,
                                                                                                  1.0]


@pytest.mark.parametrize('cfg, error', [
    (dict(type='NoSuchLR'), KeyError),
    (dict(type='LinearLR', start_factor=2.0, end=3), ValueError),
    (dict(type='StepLR', step_size=0), ValueError),
    (dict(type='MultiStepLR', milestones=[3, 2]), ValueError),
    (dict(type='LinearLR', begin=3, end=3), ValueError),
    (dict(type='LinearLR', end=3, by_epoch=False, convert_to_iter_based=True), ValueError),
])
def test_bad_scheduler_configs(cfg, error):
    with pytest.raises(error):
        LRSchedule(0.1, [cfg], E)
