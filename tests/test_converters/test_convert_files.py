"""Reading checkpoint files safely: the restricted ``.pth`` unpickler refuses code, broken or unknown files give
clear errors and leave no output, destinations are never overwritten silently; and the timm export round trip.
"""
import io
import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from effnet_mm.converters import CheckpointReadError, ConversionError, UnsafeCheckpointError, convert_weights
from effnet_mm.converters.torch_reader import (
    LEGACY_MAGIC_NUMBER,
    TorchCheckpoint,
    TorchStateDictReader,
    TorchTensorRef,
)
from effnet_mm.utils import load_checkpoint
from tests.helpers import INTEROP_FIXTURES, load_tool

pytest.importorskip('safetensors')

MMPRETRAIN = INTEROP_FIXTURES / 'mmpretrain'
ZIP_PTH = MMPRETRAIN / 'efficientnet-b0_8xb32_in1k' / 'checkpoint.pth'
LEGACY_PTH = MMPRETRAIN / 'efficientnet-b0_8xb32-01norm_in1k' / 'checkpoint_mmcls0x_plain_legacy.pth'
TIMM = INTEROP_FIXTURES / 'timm' / 'efficientnet_b0'
MINDCV = INTEROP_FIXTURES / 'mindcv' / 'efficientnet_b0' / 'efficientnet_b0.ckpt'


def system_call_pickle(marker):
    """A pickle whose loading would run ``os.system('touch <marker>')``."""
    command = f'touch {marker}'.encode()
    return (b'\x80\x02cos\nsystem\nq\x00X' + len(command).to_bytes(4, 'little') + command +
            b'q\x01\x85q\x02Rq\x03.')


def assert_empty(folder):
    assert not folder.exists() or not os.listdir(folder), os.listdir(folder)


@pytest.mark.parametrize('layout', ['zip', 'legacy'])
def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path, layout):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'evil.pth'
    if layout == 'zip':
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('archive/data.pkl', system_call_pickle(marker))
    else:
        header = b''.join(pickle.dumps(v, protocol=2) for v in (
            LEGACY_MAGIC_NUMBER, 1001, {'protocol_version': 1001, 'little_endian': True}))
        path.write_bytes(header + system_call_pickle(marker))
    out = tmp_path / 'out'
    with pytest.raises(UnsafeCheckpointError, match=r'refusing to load the global os\.system'):
        convert_weights(str(path), str(out / 'evil.ckpt'))
    assert not marker.exists()
    assert_empty(out)


def test_any_non_tensor_global_is_refused(tmp_path):
    payload = io.BytesIO()
    pickle.dump({'state_dict': {}, 'args': np.float64(1.0)}, payload, protocol=2)  # numpy scalar: a global
    path = tmp_path / 'train.pth'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('ckpt/data.pkl', payload.getvalue())
    with pytest.raises(UnsafeCheckpointError, match=r'global numpy\.\S+ .*nothing from the file was run'):
        TorchCheckpoint(str(path))


def test_both_torch_formats_read_the_same_tensors():
    zipped, legacy = TorchStateDictReader(str(ZIP_PTH)), TorchStateDictReader(str(LEGACY_PTH))
    assert zipped.checkpoint.format == 'zip' and legacy.checkpoint.format == 'legacy'
    assert zipped.shapes() == legacy.shapes() and len(zipped.shapes()) == 311
    assert zipped.ignored == ['meta (top-level entry, not weights)'] and legacy.ignored == []
    value = legacy.read('backbone.layers.2.0.depthwise_conv.conv.weight')
    assert value.shape == (96, 1, 3, 3) and value.dtype == np.float32 and np.isfinite(value).all()


def test_a_view_outside_its_storage_is_refused():
    checkpoint = TorchCheckpoint(str(ZIP_PTH))
    storage = next(iter(checkpoint.storages.values()))
    with pytest.raises(CheckpointReadError, match='reaches outside its storage'):
        checkpoint.read(TorchTensorRef(storage, 0, (storage.numel + 1, ), (1, )))
    with pytest.raises(CheckpointReadError, match='reaches outside its storage'):
        checkpoint.read(TorchTensorRef(storage, storage.numel - 1, (2, 2), (1, 1)))


@pytest.mark.parametrize('source', [ZIP_PTH, LEGACY_PTH, TIMM / 'model.safetensors', MINDCV],
                         ids=['torch-zip', 'torch-legacy', 'safetensors', 'mindspore'])
def test_truncated_files_give_clear_errors_and_no_output(tmp_path, source):
    truncated = tmp_path / f'truncated{source.suffix}'
    data = source.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    out = tmp_path / 'out'
    with pytest.raises(CheckpointReadError, match=r'truncated|corrupt|cannot be read') as err:
        convert_weights(str(truncated), str(out / 'x.ckpt'), arch='efficientnet_b0')
    assert str(truncated) in str(err.value)
    assert_empty(out)


@pytest.mark.parametrize('content,match', [(b'', 'the file is empty'),
                                           (b'\x00not a checkpoint' * 50, 'unknown file format')])
def test_unknown_files_give_clear_errors(tmp_path, content, match):
    path = tmp_path / 'weights.bin'
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match=match):
        convert_weights(str(path), str(tmp_path / 'out' / 'x.ckpt'))
    assert_empty(tmp_path / 'out')


def test_unknown_layout_is_explained(tmp_path):
    from safetensors.numpy import save_file
    path = tmp_path / 'resnet.safetensors'
    save_file({'conv1.weight': np.zeros((8, 3, 3, 3), np.float32), 'fc.bias': np.zeros(10, np.float32)}, str(path))
    with pytest.raises(ConversionError, match=r'unknown parameter layout \(names like conv1.weight, fc.bias\)'):
        convert_weights(str(path), str(tmp_path / 'out' / 'x.ckpt'))


def test_bare_timm_file_needs_the_flavour(tmp_path):
    with pytest.raises(ConversionError) as err:
        convert_weights(str(TIMM / 'model.safetensors'), str(tmp_path / 'x.ckpt'))
    assert '--arch efficientnet_b0 (' in str(err.value) and '--arch tf_efficientnet_b0 (' in str(err.value)
    result = convert_weights(str(TIMM / 'model.safetensors'), str(tmp_path / 'x.ckpt'), arch='efficientnet_b0')
    assert result.options.padding == 'symmetric'
    with pytest.raises(ConversionError, match="config.json says 'efficientnet_b0' but --arch tf_efficientnet_b0"):
        convert_weights(str(TIMM), str(tmp_path / 'y.ckpt'), arch='tf_efficientnet_b0')
    with pytest.raises(ConversionError, match=r'--from mindcv was requested but .* holds timm tensor names'):
        convert_weights(str(TIMM), str(tmp_path / 'z.ckpt'), source='mindcv')


def test_destinations_are_never_overwritten_silently(tmp_path):
    dst = tmp_path / 'b0.ckpt'
    dst.write_bytes(b'previous result')
    with pytest.raises(ConversionError, match='already exists; pass --force'):
        convert_weights(str(MINDCV), str(dst))
    assert dst.read_bytes() == b'previous result'
    folder = tmp_path / 'folder.ckpt'
    folder.mkdir()
    with pytest.raises(ConversionError, match='is a folder'):
        convert_weights(str(MINDCV), str(folder), force=True)
    convert_weights(str(MINDCV), str(dst), force=True)
    assert load_checkpoint(str(dst))[1]['source_library'] == 'mindcv'
    assert sorted(os.listdir(tmp_path)) == ['b0.ckpt', 'folder.ckpt']  # no temporary file left


def test_round_trip_through_timm_is_bit_identical(tmp_path):
    """effnet_mm (MindCV weights: TF padding, BN eps 1e-5) → timm folder → effnet_mm, and the folder looks like
    timm's own (same names and shapes as timm's save_for_hf output, eps in model_args)."""
    first = convert_weights(str(MINDCV), str(tmp_path / 'mindcv.ckpt'))
    exported = convert_weights(first.path, str(tmp_path / 'timm_b0'), to='timm')
    assert exported.family == 'effnet_mm' and sorted(os.listdir(exported.path)) == ['config.json',
                                                                                  'model.safetensors']
    config = json.loads((tmp_path / 'timm_b0' / 'config.json').read_text())
    assert config['architecture'] == 'tf_efficientnet_b0' and config['model_args']['bn_eps'] == 1e-5
    assert config['pretrained_cfg']['crop_pct'] == 0.875 and config['pretrained_cfg']['input_size'] == [3, 224, 224]
    from safetensors import safe_open
    with safe_open(str(tmp_path / 'timm_b0' / 'model.safetensors'), 'np') as ours, \
            safe_open(str(TIMM / 'model.safetensors'), 'np') as timm:
        assert {k: ours.get_slice(k).get_shape() for k in ours.keys()} == \
            {k: timm.get_slice(k).get_shape() for k in timm.keys()}
    back = convert_weights(str(tmp_path / 'timm_b0'), str(tmp_path / 'back.ckpt'))
    assert (back.family, back.source_arch, back.options) == ('timm', 'tf_efficientnet_b0', first.options)
    a, b = load_checkpoint(first.path)[0], load_checkpoint(back.path)[0]
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name].asnumpy(), b[name].asnumpy()), name


def test_symmetric_models_export_as_efficientnet(tmp_path):
    first = convert_weights(str(TIMM), str(tmp_path / 'timm.ckpt'))
    convert_weights(first.path, str(tmp_path / 'out'), to='timm')
    config = json.loads((tmp_path / 'out' / 'config.json').read_text())
    assert config['architecture'] == 'efficientnet_b0' and 'bn_eps' not in config['model_args']
    with pytest.raises(ConversionError, match='already exists; pass --force'):
        convert_weights(first.path, str(tmp_path / 'out'), to='timm')


def test_cli(tmp_path, capsys):
    cli = load_tool('convert_weights.py')
    dst = tmp_path / 'b2.ckpt'
    src = INTEROP_FIXTURES / 'msmodels' / 'efficientnet_b2' / 'efficientnet_b2.ckpt'
    assert cli.main([str(src), str(dst), '--save-config', str(tmp_path / 'b2.py')]) == 0
    out = capsys.readouterr()
    assert out.out.startswith('Converted MindSpore model zoo efficientnet-b2 (MindSpore ckpt, with classifier): 439')
    assert 'dropped (stored by the source, never used by its forward pass): 58' in out.out
    assert f'evaluate: python tools/test.py {tmp_path / "b2.py"} {dst}' in out.out and '439/439' in out.err
    assert "type='ResizeEdge'" in (tmp_path / 'b2.py').read_text()
    assert cli.main([str(src), str(dst)]) == 1
    assert 'already exists; pass --force' in capsys.readouterr().err


def test_tf_alias_refuses_other_sources(tmp_path, capsys):
    alias = load_tool('convert_tf_weights.py')
    target = tmp_path / 'copy.pth'
    shutil.copy(ZIP_PTH, target)
    assert alias.main([str(target), str(tmp_path / 'x.ckpt')]) == 1
    assert 'error: ' in capsys.readouterr().err


def test_init_model_without_config_needs_a_stored_one(tmp_path):
    from effnet_mm.apis import init_model
    from effnet_mm.utils import save_checkpoint
    path = save_checkpoint({'x': np.zeros(1, np.float32)}, str(tmp_path / 'bare.ckpt'))
    with pytest.raises(ValueError, match='carries no config'):
        init_model(checkpoint=path)
