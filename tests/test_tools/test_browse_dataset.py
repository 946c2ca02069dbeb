"""tools/analysis/browse_dataset.py: a PNG grid of the requested size showing exactly what the loader feeds."""
import os

import cv2
import numpy as np

from effnet_mm.datasets import build_dataloader
from effnet_mm.datasets.visualization import GRID_MARGIN, label_strip_height
from tests.helpers import load_tool

CONFIG = '''
randomness = dict(seed=7)
train_dataloader = dict(
    batch_size=2, num_workers=1, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root={root!r}, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='EfficientNetRandomCrop', scale=16),
        dict(type='RandomFlip', prob=0.5), dict(type='RandomErasing', erase_prob=0.5), dict(type='PackInputs')]))
'''


def test_grid_png_has_the_requested_layout_and_shows_the_loader_samples(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(6):
        folder = tmp_path / 'data' / ('apple', 'pear')[i % 2]
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(str(folder / f'{i}.png'), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    config = tmp_path / 'browse_cfg.py'
    config.write_text(CONFIG.format(root=str(tmp_path / 'data')))
    out_dir = tmp_path / 'vis'
    browse = load_tool('analysis/browse_dataset.py')
    argv = [str(config), '--phase', 'train', '--output-dir', str(out_dir), '-n', '5', '--ncols', '3',
            '--tile-size', '40', '--epoch', '1']
    assert browse.main(argv) == 0
    assert 'wrote' in capsys.readouterr().out
    grid = cv2.imread(str(out_dir / 'train_epoch1.png'))
    tile = 48  # 16 px pipeline output, scaled by ceil(40 / 16) = 3
    cell_h = tile + label_strip_height(tile)
    assert grid.shape == (2 * cell_h + 3 * GRID_MARGIN, 3 * tile + 4 * GRID_MARGIN, 3)  # 2 rows x 3 columns
    # The first cell is the first sample the loader feeds in epoch 1 (same seed, order and augmentation).
    loader = build_dataloader(dict(batch_size=2, sampler=dict(type='DefaultSampler', shuffle=True),
                                   dataset=dict(type='CustomDataset', data_root=str(tmp_path / 'data'),
                                                pipeline=browse.load_config(str(config)).train_dataloader.dataset
                                                .pipeline)), seed=7)
    loader.set_epoch(1)
    first = next(iter(loader))['inputs'][0].transpose(1, 2, 0)
    cell = grid[GRID_MARGIN:GRID_MARGIN + tile, GRID_MARGIN:GRID_MARGIN + tile]
    np.testing.assert_array_equal(cell, np.repeat(np.repeat(first, 3, axis=0), 3, axis=1))
    caption = grid[GRID_MARGIN + tile:GRID_MARGIN + cell_h, GRID_MARGIN:GRID_MARGIN + tile]
    assert (caption < 128).any()  # the label name is drawn
    assert (grid[-GRID_MARGIN - cell_h:, -GRID_MARGIN - tile:] == 255).all()  # 5 samples: the sixth cell is empty
    assert browse.main(argv) == 0 and 'replaced' in capsys.readouterr().out
    assert browse.main([str(config), '--phase', 'val', '--output-dir', str(out_dir)]) == 1
    assert 'has no val_dataloader' in capsys.readouterr().err
