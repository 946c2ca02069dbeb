"""tools/infer.py: class names in the output (demo and ImageNet configs), bad files reported one line each while the
others are classified, TF top-1 on the converted fixture."""
import cv2
import numpy as np
import pytest

from effnet_mm.apis import init_model
from effnet_mm.datasets import DEMO_CLASSES, IMAGENET_CATEGORIES
from effnet_mm.utils import save_checkpoint
from tests.helpers import ROOT, TF_FIXTURES, load_tool

DEMO_CONFIG = str(ROOT / 'configs/efficientnet/efficientnet-b0_1xb32_demo.py')
B0_CONFIG = str(ROOT / 'configs/efficientnet/efficientnet-b0_8xb32_in1k.py')


def _predictions(out):
    """``{path: [(rank, score, label, name), ...]}`` from the tool's stdout."""
    result, path = {}, None
    for line in out.splitlines():
        if not line.startswith('  '):
            path = line
            result[path] = []
            continue
        rank, score, label, *name = line.split(maxsplit=3)
        result[path].append((int(rank.rstrip('.')), float(score), int(label), name[0] if name else None))
    return result


def _random_checkpoint(config, path):
    return save_checkpoint(init_model(config), str(path))


def test_demo_folder_names_classes_and_reports_bad_files(tmp_path, capsys):
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ('a.png', 'c.jpg'):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (72, 72, 3), dtype=np.uint8))
    good = (folder / 'c.jpg').read_bytes()
    (folder / 'b_empty.jpg').write_bytes(b'')
    (folder / 'b_truncated.jpg').write_bytes(good[:len(good) // 2])
    (folder / '._a.png').write_bytes(b'\x00\x05\x16\x07 AppleDouble')  # macOS metadata, not an image
    (folder / 'notes.txt').write_text('not an image')
    checkpoint = _random_checkpoint(DEMO_CONFIG, tmp_path / 'demo.ckpt')
    infer = load_tool('infer.py')
    assert infer.main([DEMO_CONFIG, checkpoint, str(folder), '--topk', '3', '--batch-size', '2']) == 1
    captured = capsys.readouterr()
    predictions = _predictions(captured.out)
    assert [p.rsplit('/', 1)[1] for p in predictions] == ['a.png', 'c.jpg']  # the good ones are still classified
    for lines in predictions.values():
        assert [rank for rank, *_ in lines] == [1, 2, 3]
        assert all(name == DEMO_CLASSES[label] for _, _, label, name in lines)
        assert lines[0][1] >= lines[1][1] >= lines[2][1]
    errors = captured.err.splitlines()
    assert errors[0].startswith('error: cannot decode image ')
    assert errors[0].endswith('b_empty.jpg: empty file (0 bytes)')
    assert 'b_truncated.jpg: truncated JPEG' in errors[1]
    assert errors[2] == 'error: 2 of 4 images could not be read' and len(errors) == 3  # ._a.png is not an image


def test_imagenet_config_prints_imagenet_names(tmp_path, capsys):
    image = tmp_path / 'cat.png'
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    checkpoint = _random_checkpoint(B0_CONFIG, tmp_path / 'b0.ckpt')
    infer = load_tool('infer.py')
    assert infer.main([B0_CONFIG, checkpoint, str(image), '--topk', '5']) == 0
    (lines, ) = _predictions(capsys.readouterr().out).values()
    assert len(lines) == 5 and all(name == IMAGENET_CATEGORIES[label] for _, _, label, name in lines)


def test_converted_tf_fixture_gives_the_tf_top1(tmp_path_factory, tmp_path, capsys):
    from tests.test_apis.test_inference import converted_b0_checkpoint, fixture_image_bgr

    checkpoint = converted_b0_checkpoint(tmp_path_factory)
    cv2.imwrite(str(tmp_path / 'a.png'), fixture_image_bgr())
    infer = load_tool('infer.py')
    argv = [B0_CONFIG, str(checkpoint), str(tmp_path / 'a.png'), '--topk', '3',
            '--cfg-options', 'test_dataloader.dataset.pipeline.1.crop_padding=0']
    assert infer.main(argv) == 0
    (lines, ) = _predictions(capsys.readouterr().out).values()
    expected = int(np.load(TF_FIXTURES / 'efficientnet-b0' / 'logits_ema_meanstd.npy').argmax())
    assert lines[0][2] == expected and lines[0][3] == IMAGENET_CATEGORIES[expected]
    assert infer.main([B0_CONFIG, str(checkpoint), str(tmp_path / 'missing')]) == 1
    assert 'image or folder not found' in capsys.readouterr().err


@pytest.mark.parametrize('argv_tail', [['--topk', '0'], ['--batch-size', '0']])
def test_bad_arguments(argv_tail, capsys):
    with pytest.raises(SystemExit) as usage_error:  # argparse's status for a bad command line
        load_tool('infer.py').main([DEMO_CONFIG, 'x.ckpt', 'x.png'] + argv_tail)
    assert usage_error.value.code == 2
    assert 'must be an integer >= 1' in capsys.readouterr().err
