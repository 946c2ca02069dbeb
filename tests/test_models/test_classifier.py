"""Head, loss, data preprocessor and the classifier wiring."""
import mindspore as ms
import numpy as np
import pytest
from mmengine import Config

from effnet_mm.models import ClsDataPreprocessor, CrossEntropyLoss, DropPath, LinearClsHead
from effnet_mm.registry import MODELS
from effnet_mm.variants import ADVPROP_MEAN, ADVPROP_STD, IMAGENET_MEAN, IMAGENET_STD, VARIANTS
from tests.helpers import ROOT


def test_preprocessor_normalises_bgr_uint8_to_rgb():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 3, 5, 4)).astype(np.uint8)
    bgr = rgb[:, ::-1].copy()
    pre = ClsDataPreprocessor(mean=IMAGENET_MEAN, std=IMAGENET_STD, to_rgb=True)
    expected = (rgb.astype(np.float32) - np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)) / \
        np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(pre(ms.Tensor(bgr)).asnumpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ms.jit(pre)(ms.Tensor(bgr)).asnumpy(), expected, rtol=1e-6, atol=1e-6)


def test_advprop_preprocessing_is_01norm():
    rgb = np.random.default_rng(1).integers(0, 256, (1, 3, 4, 4)).astype(np.uint8)
    pre = ClsDataPreprocessor(mean=ADVPROP_MEAN, std=ADVPROP_STD, to_rgb=False)
    np.testing.assert_allclose(pre(ms.Tensor(rgb)).asnumpy(), rgb * 2.0 / 255 - 1.0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('kwargs, message', [
    (dict(mean=[1.0, 2.0]), 'mean must have 3 values'),
    (dict(mean=[0, 0, 0], std=[1.0, 0.0, 1.0]), 'std must be positive'),
])
def test_preprocessor_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClsDataPreprocessor(**kwargs)


def test_label_smoothing_cross_entropy_matches_formula():
    logits = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    labels = np.array([0, 4, 2], np.int32)
    loss = CrossEntropyLoss(label_smoothing=0.1)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = np.full((3, 5), 0.1 / 5, np.float32)
    target[np.arange(3), labels] += 0.9
    assert loss == pytest.approx(-(target * log_probs).sum(-1).mean(), rel=1e-5)
    plain = CrossEntropyLoss()(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    assert plain == pytest.approx(-log_probs[np.arange(3), labels].mean(), rel=1e-5)


def test_head_dropout_only_in_training():
    ms.set_seed(0)
    head = LinearClsHead(num_classes=3, in_channels=64, dropout=0.5)
    feats = (ms.Tensor(np.ones((8, 64), np.float32)), )
    head.set_train(False)
    first, second = head(feats).asnumpy(), head(feats).asnumpy()
    np.testing.assert_array_equal(first, second)
    head.set_train(True)
    assert not np.allclose(head(feats).asnumpy(), first)


def test_drop_path_drops_whole_samples_and_rescales():
    ms.set_seed(0)
    drop = DropPath(0.25)
    x = ms.Tensor(np.ones((4000, 2, 2, 2), np.float32))
    drop.set_train(True)
    y = drop(x).asnumpy().reshape(4000, -1)
    per_sample = np.unique(y, axis=1)
    assert per_sample.shape[1] == 1                     # a sample is kept or dropped as a whole
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert (y[:, 0] == 0).mean() == pytest.approx(0.25, abs=0.03)
    drop.set_train(False)
    np.testing.assert_array_equal(drop(x).asnumpy(), x.asnumpy())


@pytest.mark.parametrize('arch', sorted(VARIANTS))
def test_base_model_configs_build_and_match_the_variant_table(arch):
    cfg = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'models' / f'efficientnet_{arch}.py'))
    variant = VARIANTS[arch]
    assert cfg.model.backbone.arch == arch
    assert cfg.model.head.in_channels == variant.head_channels
    assert cfg.model.head.dropout == variant.dropout
    if arch in ('b0', 'b3'):  # building big variants is covered by test_backbone
        model = MODELS.build(cfg.model)
        assert model.head.fc.weight.shape == (1000, variant.head_channels)


def test_unknown_type_names_registry_and_close_matches():
    with pytest.raises(KeyError) as info:
        MODELS.build(dict(type='EfficientNett', arch='b0'))
    message = str(info.value)
    assert "'EfficientNett'" in message and 'effnet_mm::model' in message and "Did you mean 'EfficientNet'" in message


def test_classifier_loss_and_logits_agree():
    ms.set_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor', mean=IMAGENET_MEAN, std=IMAGENET_STD),
            backbone=dict(type='EfficientNet', arch='b0'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=7, in_channels=1280, loss=dict(type='CrossEntropyLoss'))))
    model.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32)).astype(np.uint8))
    labels = ms.Tensor(np.array([1, 6], np.int32))
    logits = model(x)
    assert logits.shape == (2, 7)
    np.testing.assert_allclose(model.classify(model.preprocess(x)).asnumpy(), logits.asnumpy(), rtol=1e-6)
    expected = CrossEntropyLoss()(logits, labels).asnumpy()
    assert model.loss(x, labels).asnumpy() == pytest.approx(expected, rel=1e-5)
