"""init_model / inference_model on the official-layout TF B0 fixture converted to MindSpore.

The fixture image is the TF model input *after* TF's eval crop (224x224 RGB): the expected logits were computed on it
directly.  The ImageNet config's test pipeline would crop it again (EfficientNetCenterCrop keeps 224/256 of the side
and resizes back to 224), which is a different input, so the parity tests set ``crop_padding=0``: the crop is then the
whole image and the same-size bicubic resize is the identity.
"""

import cv2
import mindspore as ms
import numpy as np
import pytest
from mmengine.config import Config

from effnet_mm.apis import class_names_from_cfg, inference_model, init_model, load_model_weights
from effnet_mm.apis.model_init import build_classifier
from effnet_mm.datasets import IMAGENET_CATEGORIES
from effnet_mm.utils import load_checkpoint, save_checkpoint
from effnet_mm.variants import ADVPROP_MEAN, IMAGENET_MEAN
from tests.helpers import ROOT, TF_FIXTURES, inside

B0_FIXTURE = TF_FIXTURES / 'efficientnet-b0'
B0_CONFIG = str(ROOT / 'configs/efficientnet/efficientnet-b0_8xb32_in1k.py')
NO_CROP = {'test_dataloader.dataset.pipeline.1.crop_padding': 0}
#: The fixture README's parity tolerance for these random-weight networks (they amplify float32 rounding).
ATOL = 1e-3




def converted_b0_checkpoint(tmp_path_factory):
    """The B0 fixture converted (EMA weights) once per test session; shared with tests/test_export.py."""
    pytest.importorskip('tensorflow', reason='converting the TF fixture needs tensorflow')
    from effnet_mm.converters import convert_tf_checkpoint

    folder = tmp_path_factory.getbasetemp() / 'converted_b0_fixture'
    path = folder / 'efficientnet-b0_fixture.ckpt'
    if not path.exists():
        folder.mkdir(exist_ok=True)
        with inside(folder):
            convert_tf_checkpoint(str(B0_FIXTURE), str(path))
    return path


def fixture_image_bgr():
    return np.ascontiguousarray(np.load(B0_FIXTURE / 'input_image_uint8_hwc_rgb.npy')[:, :, ::-1])


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.fixture(scope='module')
def b0_checkpoint(tmp_path_factory):
    return converted_b0_checkpoint(tmp_path_factory)


@pytest.fixture(scope='module')
def b0_model(b0_checkpoint):
    return init_model(B0_CONFIG, str(b0_checkpoint), cfg_options=NO_CROP)


def test_init_model_state(b0_model):
    assert not b0_model.training
    assert isinstance(b0_model.cfg, Config) and b0_model.cfg.test_dataloader.dataset.pipeline[1].crop_padding == 0
    assert b0_model.dataset_meta == {'classes': IMAGENET_CATEGORIES}  # the ImageNet dataset type's default names
    assert b0_model.checkpoint_meta['arch'] == 'b0' and b0_model.checkpoint_meta['loaded_online_weights'] == 'False'
    # The config's top-level data_preprocessor went into the model.
    assert b0_model.data_preprocessor.mean_values == IMAGENET_MEAN and b0_model.data_preprocessor.to_rgb


def test_inference_on_fixture_png_gives_fixture_top1(b0_model, tmp_path):
    expected = np.load(B0_FIXTURE / 'logits_ema_meanstd.npy')[0]
    path = tmp_path / 'fixture.png'
    assert cv2.imwrite(str(path), fixture_image_bgr())  # PNG is lossless; OpenCV writes and reads BGR
    result = inference_model(b0_model, str(path), topk=5)
    assert result['pred_label'] == int(expected.argmax())
    assert result['pred_class'] == IMAGENET_CATEGORIES[result['pred_label']]
    assert np.abs(result['pred_scores'] - softmax(expected)).max() < ATOL
    assert [t[0] for t in result['topk']] == list(np.argsort(-expected)[:5])
    assert result['pred_score'] == pytest.approx(result['topk'][0][1])


def test_array_input_is_bgr_and_matches_file_input(b0_model, tmp_path):
    bgr = fixture_image_bgr()
    path = tmp_path / 'fixture.png'
    cv2.imwrite(str(path), bgr)
    from_array, from_file = inference_model(b0_model, [bgr, str(path)])
    np.testing.assert_allclose(from_array['pred_scores'], from_file['pred_scores'], atol=1e-6)
    # RGB by mistake is a different image for the model.
    wrong = inference_model(b0_model, np.ascontiguousarray(bgr[:, :, ::-1]))
    assert np.abs(wrong['pred_scores'] - from_array['pred_scores']).max() > ATOL
    with pytest.raises(ValueError, match='HWC uint8 with 3 channels in BGR'):
        inference_model(b0_model, bgr.astype(np.float32))


def test_default_test_pipeline_crops_like_tf(b0_checkpoint):
    """With the config as shipped, the TF eval crop (224/256 of the side, resized back) is applied."""
    model = init_model(B0_CONFIG, str(b0_checkpoint))
    bgr = fixture_image_bgr()
    crop = int(np.float32(224 / 256) * np.float32(224))
    offset = (224 - crop + 1) // 2
    manual = cv2.resize(bgr[offset:offset + crop, offset:offset + crop], (224, 224), interpolation=cv2.INTER_CUBIC)
    logits = model(ms.Tensor(np.ascontiguousarray(manual.transpose(2, 0, 1)[None]))).asnumpy()[0]
    result = inference_model(model, bgr)
    np.testing.assert_allclose(result['pred_scores'], softmax(logits.astype(np.float64)), atol=1e-6)


def test_class_names_from_config_and_count_check(tmp_path):
    names = [f'shape_{i}' for i in range(10)]
    cfg = Config(dict(test_dataloader=dict(dataset=dict(type='CustomDataset', metainfo=dict(classes=names)))))
    assert class_names_from_cfg(cfg) == tuple(names)
    classes_file = tmp_path / 'classes.txt'
    classes_file.write_text('\n'.join(names) + '\n')
    cfg = Config(dict(val_dataloader=dict(dataset=dict(type='CustomDataset', classes=str(classes_file)))))
    assert class_names_from_cfg(cfg) == tuple(names)
    assert len(class_names_from_cfg(Config(dict(test_dataloader=dict(dataset=dict(type='ImageNet')))))) == 1000
    assert class_names_from_cfg(Config(dict(test_dataloader=dict(dataset=dict(type='CustomDataset'))))) is None

    options = {'model.head.num_classes': 10, 'test_dataloader.dataset.classes': names}
    model = init_model(B0_CONFIG, cfg_options=options)
    result = inference_model(model, fixture_image_bgr(), topk=3)
    assert result['pred_class'] == names[result['pred_label']]
    assert [name for _, _, name in result['topk']] == [names[label] for label, _, _ in result['topk']]
    with pytest.raises(ValueError, match='declares 10 classes but model.head.num_classes=1000'):
        init_model(B0_CONFIG, cfg_options={'test_dataloader.dataset.classes': names})


def test_top_level_advprop_preprocessor_is_copied_into_the_model():
    cfg = Config.fromfile(str(ROOT / 'configs/efficientnet/efficientnet-b0_8xb32-01norm_in1k.py'))
    model = build_classifier(cfg, init_weights=False)
    assert model.data_preprocessor.mean_values == ADVPROP_MEAN == model.data_preprocessor.std_values


def test_mismatched_checkpoints_fail_clearly(b0_checkpoint):
    b1 = build_classifier(Config.fromfile(str(ROOT / 'configs/efficientnet/efficientnet-b1_8xb32_in1k.py')),
                          init_weights=False)
    with pytest.raises(KeyError, match=r"(?s)efficientnet-b0_fixture.ckpt does not match.*missing \d+: "
                                       r"backbone\.layers\.1\.1\..*another variant than the config's arch='b1' "
                                       r"\(its metadata says arch='b0'\)"):
        load_model_weights(b1, str(b0_checkpoint))
    cfg = Config.fromfile(B0_CONFIG)
    cfg.merge_from_dict({'model.head.num_classes': 10})
    with pytest.raises(KeyError, match=r'(?s)head\.fc\.weight: checkpoint \(1000, 1280\) vs model \(10, 1280\).*'
                                       r'classifies 1000 classes: set model.head.num_classes=1000'):
        load_model_weights(build_classifier(cfg, init_weights=False), str(b0_checkpoint))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        init_model(B0_CONFIG, 'no_such.ckpt')


def test_runner_checkpoint_with_ema_and_optimizer_state(b0_checkpoint, tmp_path, caplog):
    """Runner checkpoints (EMAHook) hold the averages under the plain names, the raw training weights as
    ``online.<name>``, and optimizer state: the averages load by default, ``online=True`` gives the raw ones."""
    params, _ = load_checkpoint(str(b0_checkpoint))
    state = {name: value.asnumpy() for name, value in params.items()}
    state.update({f'online.{name}': value * 0.5 for name, value in list(state.items())})
    state['moment.head.fc.bias'] = np.zeros(1000, np.float32)
    state['global_step'] = np.array([7], np.int32)
    state['stray.tensor'] = np.zeros(3, np.float32)
    path = str(tmp_path / 'epoch_3.ckpt')
    save_checkpoint(state, path, {'format': 'effnet_mm-train-v1', 'epoch': '3'})
    model = build_classifier(Config.fromfile(B0_CONFIG))
    bias = state['head.fc.bias']

    meta = load_model_weights(model, path)
    assert meta['loaded_online_weights'] == 'False' and meta['epoch'] == '3'
    np.testing.assert_array_equal(model.head.fc.bias.asnumpy(), bias)
    # Only the unknown entry is reported; training state is expected.
    assert 'ignoring 1 entries' in caplog.text and 'stray.tensor' in caplog.text
    assert load_model_weights(model, path, online=True)['loaded_online_weights'] == 'True'
    np.testing.assert_array_equal(model.head.fc.bias.asnumpy(), bias * 0.5)
    with pytest.raises(KeyError, match='online=True but the file has no "online.<name>" training weights'):
        load_model_weights(model, str(b0_checkpoint), online=True)
