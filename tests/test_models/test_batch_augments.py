"""Mixup / CutMix batch augments (host-drawn parameters, applied inside the compiled training step)."""
import math

import mindspore as ms
import numpy as np
import pytest

from effnet_mm.models.batch_augments import BatchAugments, CutMix, Mixup, build_batch_augments

LABELS = np.array([0, 1, 2, 3, 1, 0, 2, 3], np.int32)


@pytest.mark.parametrize('augment', [Mixup(alpha=0.8), CutMix(alpha=1.0)])
def test_targets_are_the_weighted_label_pair_and_sum_to_one(augment):
    rng = np.random.default_rng(0)
    for _ in range(20):
        mix = augment(rng, LABELS, 5, (16, 12))
        assert mix.targets.shape == (8, 5) and np.allclose(mix.targets.sum(axis=1), 1.0)
        assert sorted(mix.perm.tolist()) == list(range(8))
        for i, j in enumerate(mix.perm):
            expected = np.zeros(5)
            expected[LABELS[i]] += mix.lam
            expected[LABELS[j]] += 1 - mix.lam
            np.testing.assert_allclose(mix.targets[i], expected, atol=1e-6)


@pytest.mark.parametrize('alpha', [0.2, 0.8, 1.0])
def test_mixup_coefficient_follows_beta(alpha):
    """Mean alpha/(2 alpha) = 0.5 and variance 1/(4 (2 alpha + 1)) of Beta(alpha, alpha), over 4000 draws."""
    rng = np.random.default_rng(1)
    lams = np.array([Mixup(alpha)(rng, LABELS, 4, (4, 4)).lam for _ in range(4000)])
    n = lams.size
    var = 1.0 / (4 * (2 * alpha + 1))
    assert abs(lams.mean() - 0.5) < 4 * math.sqrt(var / n)
    assert abs(lams.var() - var) < 0.1 * var
    # Kolmogorov-Smirnov against the Beta CDF.  On [0, 1/2] the substitution t = u**alpha removes the density's
    # singularity at 0 (dF = (1 - t**(1/alpha))**(alpha - 1) dt / alpha); the other half follows by symmetry.
    t = np.linspace(0.0, 0.5**alpha, 200001)
    integrand = (1.0 - t**(1.0 / alpha))**(alpha - 1.0) / alpha
    half = np.concatenate([[0.0], np.cumsum((integrand[1:] + integrand[:-1]) / 2 * np.diff(t))])
    half /= 2 * half[-1]
    u = t**(1.0 / alpha)
    grid = np.concatenate([u, 1.0 - u[::-1]])
    cdf = np.concatenate([half, 1.0 - half[::-1]])
    empirical = np.searchsorted(np.sort(lams), grid, side='right') / n
    assert np.abs(empirical - cdf).max() < 1.63 / math.sqrt(n)  # 99 % critical value


def test_mixup_mask_is_the_constant_lambda():
    mix = Mixup(0.8)(np.random.default_rng(2), LABELS, 4, (6, 5))
    assert mix.mask.shape == (1, 1, 6, 5) and np.all(mix.mask == np.float32(mix.lam))


def test_cutmix_box_area_matches_lambda():
    rng = np.random.default_rng(3)
    for _ in range(200):
        mix = CutMix(1.0)(rng, LABELS, 4, (32, 24))
        pasted = 1.0 - mix.mask
        assert set(np.unique(mix.mask)) <= {0.0, 1.0}
        assert abs(mix.lam - (1.0 - pasted.sum() / (32 * 24))) < 1e-6  # the target weight is the area kept
        ys, xs = np.nonzero(pasted[0, 0])
        if ys.size:  # the pasted region is one rectangle
            assert pasted[0, 0, ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()


def test_cutmix_box_follows_the_drawn_lambda_before_clipping():
    """Away from the borders the box has side sqrt(1 - lam) of the image (timm's rand_bbox)."""
    cut = CutMix(1.0)
    rng = np.random.default_rng(4)
    for _ in range(100):
        lam = float(rng.uniform(0.1, 0.9))
        y0, y1, x0, x1 = cut.box(np.random.default_rng(5), lam, (100, 100))
        if 0 < y0 and y1 < 100 and 0 < x0 and x1 < 100:
            side = int(100 * math.sqrt(1 - lam))
            assert y1 - y0 in (side, side - 1) and x1 - x0 in (side, side - 1)


def test_random_choice_probs_and_config_errors():
    augments = BatchAugments([dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)], probs=[0.5, 0.0])
    rng = np.random.default_rng(6)
    kinds = []
    for _ in range(400):
        mix = augments(rng, LABELS, 4, (8, 8))
        kinds.append('none' if mix.lam == 1.0 and (mix.perm == np.arange(8)).all() else
                     'mixup' if np.all(mix.mask == mix.mask.flat[0]) else 'cutmix')
    assert kinds.count('cutmix') == 0 and 150 < kinds.count('mixup') < 250
    assert build_batch_augments(None) is None and build_batch_augments({}) is None
    with pytest.raises(ValueError, match='alpha must be a positive number'):
        Mixup(0)
    with pytest.raises(KeyError, match=r"model.train_cfg: unknown keys \['augment'\]"):
        build_batch_augments(dict(augment=[dict(type='Mixup', alpha=1.0)]))
    with pytest.raises(KeyError, match='Mixupp'):
        build_batch_augments(dict(augments=[dict(type='Mixupp', alpha=1.0)]))


def test_the_training_step_mixes_inside_the_graph():
    """The compiled step feeds x * mask + x[perm] * (1 - mask): with all-ones labels and a constant model
    input the loss equals a host-side computation on the mixed batch."""
    from effnet_mm.engine.optim_wrapper import build_optim_wrapper
    from effnet_mm.engine.train_step import TrainStep
    from effnet_mm.registry import MODELS

    ms.set_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch='b0', norm_eval=True,
                                                            drop_path_rate=0.0),
                              neck=dict(type='GlobalAveragePooling'),
                              head=dict(type='LinearClsHead', num_classes=4, in_channels=1280)))
    model.set_train(True)
    step = TrainStep(model, build_optim_wrapper(dict(optimizer=dict(type='SGD', lr=0.0)), model))
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (8, 3, 16, 16)).astype(np.uint8)
    mix = CutMix(1.0)(rng, LABELS % 4, 4, (16, 16))
    loss, _ = step(images, mix.targets, 0.0, None, None, 1.0, True, (mix.perm, mix.mask))
    mixed = images.astype(np.float32) * mix.mask + images[mix.perm].astype(np.float32) * (1 - mix.mask)
    expected = model.loss(ms.Tensor(mixed), ms.Tensor(mix.targets)).asnumpy()
    assert abs(loss - float(expected)) < 1e-4
