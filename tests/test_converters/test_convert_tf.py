"""End-to-end conversion of the official-layout TF B0 fixture, with logits parity against the TF reference.

The fixture (``shared/fixtures/tf_effnet/efficientnet-b0``) holds random weights in the exact layout of the released
checkpoints, plus the logits the official TF eval code computed from them with its EMA restore.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from effnet_mm.converters import CONVERTER_VERSION, CheckpointReadError, ConversionError, convert_tf_checkpoint
from effnet_mm.converters import convert as convert_module
from effnet_mm.registry import MODELS
from effnet_mm.utils import load_checkpoint
from effnet_mm.variants import ADVPROP_MEAN, ADVPROP_STD, IMAGENET_MEAN, IMAGENET_STD
from tests.helpers import ROOT, TF_FIXTURES, inside, load_tool

pytest.importorskip('tensorflow')

B0 = TF_FIXTURES / 'efficientnet-b0'
CKPT_FILES = ('checkpoint', 'model.ckpt.index', 'model.ckpt.data-00000-of-00001')
#: Parity tolerance of the fixture README (these random networks amplify float32 rounding).
ATOL = 1e-3




@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The B0 fixture converted with EMA (default) and with --no-ema."""
    out = tmp_path_factory.mktemp('converted')
    with inside(out):
        ema = convert_tf_checkpoint(str(B0), str(out / 'b0_ema.ckpt'))
        raw = convert_tf_checkpoint(str(B0), str(out / 'b0_raw.ckpt'), use_ema=False)
    return {'ema': ema, 'raw': raw}


def build_classifier(params, mean=None, std=None, to_rgb=True):
    cfg = {
        'type': 'ImageClassifier',
        'backbone': {'type': 'EfficientNet', 'arch': 'b0'},
        'neck': {'type': 'GlobalAveragePooling'},
        'head': {'type': 'LinearClsHead', 'num_classes': 1000, 'in_channels': 1280, 'dropout': 0.2},
    }
    if mean is not None:
        cfg['data_preprocessor'] = {'type': 'ClsDataPreprocessor', 'mean': mean, 'std': std, 'to_rgb': to_rgb}
    model = MODELS.build(cfg)
    not_loaded, unexpected = ms.load_param_into_net(model, params, strict_load=True)
    assert not not_loaded and not unexpected, (not_loaded, unexpected)
    model.set_train(False)
    return model


def assert_nothing_written(folder):
    assert not folder.exists() or not os.listdir(folder), os.listdir(folder)


def nchw(name):
    return Tensor(np.ascontiguousarray(np.load(B0 / name).transpose(0, 3, 1, 2)))


def max_diff(logits, expected_file):
    return float(np.abs(logits.asnumpy() - np.load(B0 / expected_file)).max())


def test_summary_and_metadata(converted):
    result = converted['ema']
    assert (result.arch, result.weights, result.num_tensors, result.num_params) == ('b0', 'ema', 311, 5330564)
    assert 'EMA weights' in result.summary() and '311 tensors mapped' in result.summary()
    params, meta = load_checkpoint(result.path)
    assert len(params) == 311
    assert meta['source'] == str(B0) and meta['arch'] == 'b0' and meta['ema'] == 'True'
    assert meta['converter_version'] == CONVERTER_VERSION
    assert meta['config'] == 'configs/efficientnet/efficientnet-b0_8xb32_in1k.py' and 'EfficientNet' in meta['cfg']
    assert load_checkpoint(converted['raw'].path)[1]['weights'] == 'raw'


def test_ema_parity_meanstd_and_advprop(converted):
    model = build_classifier(load_checkpoint(converted['ema'].path)[0])
    assert max_diff(model.classify(nchw('input_meanstd_nhwc_float32.npy')), 'logits_ema_meanstd.npy') < ATOL
    assert max_diff(model.classify(nchw('input_advprop_nhwc_float32.npy')), 'logits_ema_advprop.npy') < ATOL


@pytest.mark.parametrize('mean,std,expected', [(IMAGENET_MEAN, IMAGENET_STD, 'logits_ema_meanstd.npy'),
                                               (ADVPROP_MEAN, ADVPROP_STD, 'logits_ema_advprop.npy')],
                         ids=['imagenet', 'advprop'])
def test_ema_parity_through_preprocessor(converted, mean, std, expected):
    """The raw uint8 image, fed as OpenCV would (BGR), through ClsDataPreprocessor(to_rgb=True)."""
    model = build_classifier(load_checkpoint(converted['ema'].path)[0], mean=mean, std=std, to_rgb=True)
    rgb = np.load(B0 / 'input_image_uint8_hwc_rgb.npy')
    bgr = np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1)[None])
    assert max_diff(model(Tensor(bgr)), expected) < ATOL


@pytest.mark.parametrize('config,expected', [('efficientnet-b0_8xb32_in1k.py', 'logits_ema_meanstd.npy'),
                                             ('efficientnet-b0_8xb32-01norm_in1k.py', 'logits_ema_advprop.npy')])
def test_converted_file_evaluates_with_the_configs(converted, config, expected):
    """The documented pairing: ImageNet checkpoints with the plain config, AdvProp ones with ``-01norm``."""
    from effnet_mm.apis import init_model
    model = init_model(str(ROOT / 'configs' / 'efficientnet' / config), converted['ema'].path)
    rgb = np.load(B0 / 'input_image_uint8_hwc_rgb.npy')
    bgr = np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1)[None])  # configs expect BGR (OpenCV order)
    assert max_diff(model(Tensor(bgr)), expected) < ATOL


def test_raw_weights_match_negative_control_only(converted):
    model = build_classifier(load_checkpoint(converted['raw'].path)[0])
    logits = model.classify(nchw('input_meanstd_nhwc_float32.npy'))
    assert max_diff(logits, 'logits_rawweights_meanstd_NEGATIVE_CONTROL.npy') < ATOL
    assert max_diff(logits, 'logits_ema_meanstd.npy') > 1.0


def _same_params(a, b):
    pa, pb = load_checkpoint(a)[0], load_checkpoint(b)[0]
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k].asnumpy(), pb[k].asnumpy()) for k in pa)


def test_prefix_and_relocated_folder_inputs(converted, tmp_path):
    prefix = convert_tf_checkpoint(str(B0 / 'model.ckpt'), str(tmp_path / 'prefix.ckpt'))
    assert _same_params(prefix.path, converted['ema'].path)
    # a state file naming an absolute path of another machine: the file name is looked up next to it
    folder = tmp_path / 'moved'
    folder.mkdir()
    for name in CKPT_FILES[1:]:
        os.symlink(B0 / name, folder / name)
    (folder / 'checkpoint').write_text('model_checkpoint_path: "/train/run7/model.ckpt"\n')
    moved = convert_tf_checkpoint(str(folder), str(tmp_path / 'moved.ckpt'))
    assert _same_params(moved.path, converted['ema'].path)


def test_tar_gz_input(converted, tmp_path):
    archive = tmp_path / 'efficientnet-b0.tar.gz'
    with tarfile.open(archive, 'w:gz', compresslevel=1) as tar:
        for name in CKPT_FILES:
            tar.add(B0 / name, arcname=f'efficientnet-b0/{name}')
    result = convert_tf_checkpoint(str(archive), str(tmp_path / 'out' / 'from_tar.ckpt'))
    assert _same_params(result.path, converted['ema'].path)
    assert load_checkpoint(result.path)[1]['source_checkpoint'] == os.path.join('efficientnet-b0', 'model.ckpt')


def test_unsafe_tar_is_rejected(tmp_path):
    archive = tmp_path / 'evil.tar.gz'
    payload = tmp_path / 'payload'
    payload.write_text('x')
    with tarfile.open(archive, 'w:gz') as tar:
        tar.add(payload, arcname='../escaped')
        tar.add(payload, arcname='ckpt/checkpoint')
    with pytest.raises(CheckpointReadError, match="member '../escaped' would be written outside"):
        convert_tf_checkpoint(str(archive), str(tmp_path / 'out' / 'out.ckpt'))
    assert not (tmp_path / 'escaped').exists() and not (tmp_path.parent / 'escaped').exists()
    assert_nothing_written(tmp_path / 'out')


def test_wrong_arch_writes_nothing(tmp_path):
    with pytest.raises(ConversionError, match=r'holds efficientnet-b0 .* but --arch b3 was requested'):
        convert_tf_checkpoint(str(B0), str(tmp_path / 'out' / 'out.ckpt'), arch='b3')
    assert_nothing_written(tmp_path / 'out')


def test_truncated_data_file_writes_nothing(tmp_path):
    src = tmp_path / 'truncated'
    src.mkdir()
    for name in CKPT_FILES[:2]:
        shutil.copy(B0 / name, src / name)
    data = B0 / CKPT_FILES[2]
    with open(data, 'rb') as fin, open(src / CKPT_FILES[2], 'wb') as fout:
        fout.write(fin.read(os.path.getsize(data) // 2))
    out = tmp_path / 'out'
    with pytest.raises(CheckpointReadError, match=r"Cannot read tensor 'efficientnet-b0/.*truncated or corrupt"):
        convert_tf_checkpoint(str(src), str(out / 'b0.ckpt'))
    assert_nothing_written(out)


def test_missing_tensor_writes_nothing(tmp_path, monkeypatch):
    hidden = 'efficientnet-b0/blocks_7/depthwise_conv2d/depthwise_kernel'

    class HidingReader(convert_module.TFCheckpointReader):
        def shapes(self):
            return {k: v for k, v in super().shapes().items() if not k.startswith(hidden)}

    monkeypatch.setattr(convert_module, 'TFCheckpointReader', HidingReader)
    with pytest.raises(ConversionError, match=f'backbone.layers.4.2.depthwise_conv.conv.weight <- {hidden}'):
        convert_tf_checkpoint(str(B0), str(tmp_path / 'out' / 'b0.ckpt'))
    assert_nothing_written(tmp_path / 'out')


def test_bad_sources_are_explained(tmp_path):
    empty, out = tmp_path / 'empty', tmp_path / 'out'
    empty.mkdir()
    with pytest.raises(ConversionError, match='has no TF "checkpoint" state file'):
        convert_tf_checkpoint(str(empty), str(out / 'out.ckpt'))
    with pytest.raises(ConversionError, match=r"'.*nothing' does not exist: .*'.*nothing.index' does not exist"):
        convert_tf_checkpoint(str(empty / 'nothing'), str(out / 'out.ckpt'))
    with pytest.raises(ConversionError, match='must end with ".ckpt"'):
        convert_tf_checkpoint(str(B0), str(out / 'out.pth'))
    assert_nothing_written(out)


def test_num_classes_and_publish(tmp_path):
    out = tmp_path / 'out'
    result = convert_tf_checkpoint(str(B0), str(out / 'b0_ft.ckpt'), num_classes=10, publish=True)
    digest = hashlib.sha256(open(result.path, 'rb').read()).hexdigest()
    assert result.path == str(out / f'b0_ft-{digest[:8]}.ckpt') and result.sha256 == digest
    params, meta = load_checkpoint(result.path)
    assert not any(k.startswith('head.') for k in params) and len(params) == 309
    assert meta['num_classes'] == 'none (classifier left out)'
    assert os.listdir(out) == [os.path.basename(result.path)]  # no temporary file left


def _load_cli():
    return load_tool('convert_tf_weights.py')


def test_cli_end_to_end(tmp_path):
    env = dict(os.environ, GLOG_v='3', TF_CPP_MIN_LOG_LEVEL='3')
    cmd = [sys.executable, str(ROOT / 'tools' / 'convert_tf_weights.py'), str(B0), 'b0.ckpt', '--arch', 'b0']
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith('Converted efficientnet-b0 (EMA weights, with classifier): 311 tensors')
    assert '311/311' in proc.stderr  # the progress bar
    assert (tmp_path / 'b0.ckpt').is_file()


def test_cli_error_exit_code(tmp_path, capsys):
    cli = _load_cli()
    assert cli.main([str(B0), str(tmp_path / 'out' / 'b3.ckpt'), '--arch', 'b3', '--no-ema']) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'holds efficientnet-b0' in err and '--arch b3' in err
    assert_nothing_written(tmp_path / 'out')
