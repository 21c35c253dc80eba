"""The confusion-matrix picture: one cell per (true, predicted) pair, named rows and columns."""

from __future__ import annotations

import numpy as np
import pytest

from convlab.confusion import FULL, confusion_image


def test_the_picture_shades_each_cell_by_its_share_of_the_row():
    names = ["cat", "dog", "bird"]
    picture = confusion_image([[9, 1, 0], [0, 0, 4], [2, 2, 2]], names)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    full = np.all(picture == FULL, axis=2).sum()
    # Whole rows on one cell: three cells of the full shade (cat's 9 of 10 and bird's 2 of 6 are lighter).
    assert np.all(confusion_image([[5, 0, 0], [0, 0, 4], [1, 0, 0]], names) == FULL, axis=2).sum() > 2 * full > 0
    assert not np.all(confusion_image([[0] * 3] * 3, names) == FULL, axis=2).any()
    # Longer names take more room above and beside the cells; more classes, more cells.
    longer = confusion_image(np.eye(3, dtype=int), ["cat", "dog", "a-much-longer-class-name"])
    assert longer.shape[0] > picture.shape[0]
    assert confusion_image(np.eye(20, dtype=int), [f"c{i}" for i in range(20)]).shape[1] > picture.shape[1]


def test_a_matrix_that_does_not_match_the_classes_is_refused():
    with pytest.raises(ValueError, match="a confusion matrix of 2 classes is 2x2"):
        confusion_image([[1, 2, 3]], ["a", "b"])
