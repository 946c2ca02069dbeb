"""Draw a confusion matrix as an image with OpenCV (no matplotlib): the picture mmpretrain's
``ConfusionMatrix.plot`` shows, for ``tools/analysis/confusion_matrix.py``."""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)


def _text_size(text: str, scale: float) -> tuple:
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    return width, height + baseline


def _put(img: np.ndarray, text: str, x: int, y: int, scale: float, color=_BLACK) -> None:
    """Text with its top-left corner at (x, y)."""
    _, height = _text_size(text, scale)
    cv2.putText(img, text, (int(x), int(y + height * 0.75)), _FONT, scale, color, 1, cv2.LINE_AA)


def _label_strip(labels: Sequence[str], cell: int, scale: float, right_align: bool) -> np.ndarray:
    """A white strip with one label per ``cell`` pixels of height."""
    width = max(_text_size(t, scale)[0] for t in labels) + 6
    strip = np.full((cell * len(labels), width, 3), 255, np.uint8)
    for i, text in enumerate(labels):
        w, h = _text_size(text, scale)
        _put(strip, text, width - w - 3 if right_align else 3, i * cell + (cell - h) / 2, scale)
    return strip


def draw_confusion_matrix(matrix: np.ndarray,
                          classes: Optional[Sequence[str]] = None,
                          no_prediction: Optional[np.ndarray] = None,
                          include_values: bool = False,
                          colormap: int = cv2.COLORMAP_VIRIDIS,
                          max_size: int = 1000) -> np.ndarray:
    """A BGR image of ``matrix`` (rows: true class, columns: predicted class), coloured by count.

    Args:
        matrix: ``(C, C)`` counts.
        classes: names for the axes (default: the indices); labels are drawn while a cell is at least 10 px.
        no_prediction: ``(C,)`` samples per true class that predicted nothing, drawn as an extra "none" column
            when any is non-zero.
        include_values: write the count in each cell (when the cells are large enough).
        colormap: an OpenCV colormap (viridis, like mmpretrain's plot).
        max_size: cells are ``max_size // columns`` px (between 2 and 48), so up to 500 classes fit this size.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f'draw_confusion_matrix: expected a square (C, C) matrix, got shape {matrix.shape}')
    num_classes = matrix.shape[0]
    names = [str(c) for c in (classes if classes is not None else range(num_classes))]
    if len(names) != num_classes:
        raise ValueError(f'draw_confusion_matrix: {len(names)} class names for a {num_classes}-class matrix')
    columns = matrix
    column_names = list(names)
    if no_prediction is not None and np.any(no_prediction):
        columns = np.concatenate([matrix, np.asarray(no_prediction).reshape(-1, 1)], axis=1)
        column_names.append('none')

    cell = int(np.clip(max_size // max(columns.shape), 2, 48))
    peak = max(float(columns.max()), 1.0)
    levels = np.rint(columns / peak * 255).astype(np.uint8)
    grid = cv2.applyColorMap(levels, colormap)
    grid = cv2.resize(grid, (columns.shape[1] * cell, num_classes * cell), interpolation=cv2.INTER_NEAREST)
    scale = min(0.5, cell / 40)
    if include_values and cell >= 16:
        for (i, j), value in np.ndenumerate(columns):
            text = str(int(value))
            w, h = _text_size(text, scale)
            # dark text on the bright end of the colormap, white on the dark end
            color = _BLACK if levels[i, j] > 160 else _WHITE
            _put(grid, text, j * cell + (cell - w) / 2, i * cell + (cell - h) / 2, scale, color)

    with_labels = cell >= 10
    left = (_label_strip(names, cell, scale, right_align=True) if with_labels
            else np.full((grid.shape[0], 4, 3), 255, np.uint8))
    # Column labels: a strip turned a quarter counter-clockwise, so each name reads upwards from the matrix.
    top = (np.ascontiguousarray(np.rot90(_label_strip(column_names, cell, scale, right_align=False)))
           if with_labels else np.full((4, grid.shape[1], 3), 255, np.uint8))
    # Colour bar: 0 .. peak, right of the matrix.
    bar = cv2.applyColorMap(np.linspace(255, 0, grid.shape[0]).astype(np.uint8).reshape(-1, 1), colormap)
    bar = cv2.resize(bar, (16, grid.shape[0]), interpolation=cv2.INTER_NEAREST)
    bar_labels = np.full((grid.shape[0], 60, 3), 255, np.uint8)
    _put(bar_labels, str(int(peak)), 4, 0, 0.4)
    _put(bar_labels, '0', 4, grid.shape[0] - 14, 0.4)

    body = np.concatenate([left, grid, np.full((grid.shape[0], 8, 3), 255, np.uint8), bar, bar_labels], axis=1)
    header = np.full((top.shape[0], body.shape[1], 3), 255, np.uint8)
    header[:, left.shape[1]:left.shape[1] + top.shape[1]] = top
    title = np.full((24, body.shape[1], 3), 255, np.uint8)
    _put(title, 'Predicted label', left.shape[1], 4, 0.5)
    footer = np.full((24, body.shape[1], 3), 255, np.uint8)
    _put(footer, 'rows: true label', 4, 4, 0.5)
    return np.concatenate([title, header, body, footer], axis=0)
