"""A picture of what a pipeline feeds the model: samples after the pipeline in a labelled grid (OpenCV drawing)."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .base_dataset import SKIPPABLE_ERRORS, BaseDataset
from .transforms._rng import sample_rng

#: Pixels around and between the cells of a grid.
GRID_MARGIN = 4
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)
_ERROR = (0, 0, 200)


def label_strip_height(tile_width: int) -> int:
    """Height of the caption strip under a tile of ``tile_width`` pixels."""
    return max(16, tile_width // 8)


def _fit_text(text: str, width: int, scale: float) -> str:
    """``text`` cut (with ``..``) to fit ``width`` pixels in the caption font (Hershey fonts are ASCII only)."""
    text = text.encode('ascii', 'replace').decode()
    if cv2.getTextSize(text, _FONT, scale, 1)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + '..', _FONT, scale, 1)[0][0] > width:
        text = text[:-1]
    return text + '..'


def _caption(width: int, text: str, color) -> np.ndarray:
    height = label_strip_height(width)
    strip = np.full((height, width, 3), _BACKGROUND, np.uint8)
    scale = height / 32
    text = _fit_text(text, width - 4, scale)
    baseline = (height + cv2.getTextSize(text, _FONT, scale, 1)[0][1]) // 2
    cv2.putText(strip, text, (2, baseline), _FONT, scale, color, 1, cv2.LINE_AA)
    return strip


def _as_bgr(chw: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(chw.transpose(1, 2, 0))
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.shape[2] == 1 else img[:, :, :3]


def sample_grid(dataset: BaseDataset, indices: Sequence[int], *, seed: int = 0, epoch: int = 0, ncols: Optional[int]
                = None, tile_size: int = 160) -> np.ndarray:
    """A BGR image of the samples ``indices`` after ``dataset``'s pipeline, in a grid with a caption per cell.

    Each sample gets the generator the loader gives it in ``epoch`` (``(seed, epoch, sample_idx)``), so the cells show
    exactly what training feeds the model then.  Images are scaled by an integer factor (nearest neighbour, so the
    pixels stay visible) to at least ``tile_size`` on their longer side.  Captions read ``<label>: <class name>``;
    a sample whose image cannot be loaded is shown as an empty cell captioned with its error.

    Geometry: cells of ``tile_h x tile_w`` above a caption strip of :func:`label_strip_height` pixels,
    ``GRID_MARGIN`` pixels around and between cells, ``ncols`` (default ``ceil(sqrt(n))``) columns.
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError('sample_grid: no samples to show')
    classes = dataset.metainfo.get('classes')
    tiles: List[Optional[np.ndarray]] = []
    captions: List[tuple] = []
    for idx in indices:
        try:
            packed = dataset.prepare_data(idx, sample_rng(seed, epoch, idx))
        except SKIPPABLE_ERRORS as err:
            tiles.append(None)
            captions.append((f'{idx}: {getattr(err, "reason", err)}', _ERROR))
            continue
        if packed is None:
            raise ValueError(f'sample_grid: the pipeline dropped sample {idx}')
        label = int(packed['gt_label'])
        name = str(classes[label]) if classes is not None and 0 <= label < len(classes) else ''
        tiles.append(_as_bgr(packed['inputs']))
        captions.append((f'{label}: {name}' if name else str(label), _TEXT))
    shown = [t for t in tiles if t is not None]
    if not shown:
        raise ValueError(f'sample_grid: none of the samples {indices} could be loaded: {captions[0][0]}')
    height = max(t.shape[0] for t in shown)
    width = max(t.shape[1] for t in shown)
    factor = max(1, math.ceil(tile_size / max(height, width)))
    tile_h, tile_w = height * factor, width * factor
    cell_h = tile_h + label_strip_height(tile_w)
    ncols = ncols or math.ceil(math.sqrt(len(indices)))
    nrows = math.ceil(len(indices) / ncols)
    canvas = np.full((nrows * cell_h + (nrows + 1) * GRID_MARGIN, ncols * tile_w + (ncols + 1) * GRID_MARGIN, 3),
                     _BACKGROUND, np.uint8)
    for k, (tile, (text, color)) in enumerate(zip(tiles, captions)):
        top = GRID_MARGIN + (k // ncols) * (cell_h + GRID_MARGIN)
        left = GRID_MARGIN + (k % ncols) * (tile_w + GRID_MARGIN)
        if tile is not None:
            scaled = cv2.resize(tile, (tile.shape[1] * factor, tile.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
            canvas[top:top + scaled.shape[0], left:left + scaled.shape[1]] = scaled
        else:
            canvas[top:top + tile_h, left:left + tile_w] = 200
        canvas[top + tile_h:top + cell_h, left:left + tile_w] = _caption(tile_w, text, color)
    return canvas
