"""The digits data set and its fixed train/test split.

scikit-learn's :func:`sklearn.datasets.load_digits` ships inside the package (no download):
1,797 greyscale 8x8 images of the digits 0-9, each pixel an integer 0..16, stored row-major
as 64 features. anyprec uses one fixed split everywhere (training, the golden accuracy, the
hardware verification), so every accuracy figure refers to the same 540 test images:

- ``sklearn.model_selection.train_test_split(test_size=0.3, stratify=labels,
  random_state=0, shuffle=True)`` on the arrays in the order ``load_digits()`` returns them;
- 1,257 training and 540 test images (``ceil(0.3 * 1797)`` test), every class in the same
  proportion in both halves.

The split depends only on the scikit-learn data and that call, so it is the same on every
machine with the pinned scikit-learn.
"""

from functools import lru_cache

import numpy as np

__all__ = ["DATASET", "SPLIT", "PIXEL_MAX", "N_FEATURES", "N_CLASSES", "load_split"]

#: Name of the data set, as recorded in model metadata and JSON reports.
DATASET = "digits"
#: The split parameters, as recorded in model metadata.
SPLIT = {"method": "sklearn.model_selection.train_test_split", "test_size": 0.3,
         "stratify": "labels", "random_state": 0}
#: Largest pixel value; the real input is ``pixel / PIXEL_MAX``.
PIXEL_MAX = 16
#: Input features (8 x 8 pixels) and classes.
N_FEATURES = 64
N_CLASSES = 10


def check_digits_model(net, path):
    """A model that classifies the digits maps 64 pixels to 10 class scores; anything
    else is refused by every command that scores it on the digits (ModelFileError), not
    scored by an argmax over the wrong outputs."""
    from .errors import ModelFileError
    k, m = net.layers[0].shape[1], net.layers[-1].shape[0]
    if k != N_FEATURES or m != N_CLASSES:
        raise ModelFileError(f"{path}: the model maps {k} inputs to {m} outputs; the digits "
                             f"need {N_FEATURES} inputs and {N_CLASSES} outputs (matvec runs "
                             "any layer)")


@lru_cache(maxsize=1)
def _split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # The pixels are stored as float64 but are exact integers 0..16.
    x = digits.data.astype(np.int64)
    if not np.array_equal(x, digits.data) or x.min() < 0 or x.max() > PIXEL_MAX:
        raise RuntimeError("load_digits() returned pixels outside the integers 0..16")
    y = digits.target.astype(np.int64)
    parts = train_test_split(x, y, test_size=SPLIT["test_size"], stratify=y,
                             random_state=SPLIT["random_state"], shuffle=True)
    for arr in parts:
        arr.setflags(write=False)  # cached: callers get read-only views, never a stale copy
    return parts


def load_split():
    """The fixed digits split.

    Returns
    -------
    x_train : (1257, 64) int64 array
        Training pixels, integers 0..16.
    x_test : (540, 64) int64 array
        Test pixels, integers 0..16.
    y_train : (1257,) int64 array
        Training labels 0..9.
    y_test : (540,) int64 array
        Test labels 0..9.

    The arrays are read-only (they are cached); copy them before modifying.
    """
    return _split()
