"""Data sets for training chapter 5's networks: one generated for its question, two real ones read from disk.

``colored_strokes``: a generated data set designed so that a classifier must mix space *and* channels.
Each ``size x size`` RGB image holds two strokes (bars of 3 to 5 pixels) in one of four layouts
(``LAYOUTS``: an L, a T, two horizontal bars one above the other, two vertical bars side by side), at a
random position. One stroke is drawn in a mostly-red colour, the other in a mostly-green one; the class is
the layout *and* which stroke is red (8 classes). Swapping the two colours changes the class, and the
two classes of a swap give the same distribution of grey-level pictures (the sum over channels), so no
function of the grey image can be right more than half the time (``GREY_CEILING``); nor can a classifier that reads each channel
on its own, position-free, tell "red above green" from "green above red": the class is the *relative
position of patterns in different channels*. Nuisances: the colours' exact mix, each stroke's length and
brightness, a third stroke of a random colour that is not part of the class (a distractor), and
Gaussian pixel noise of standard deviation ``noise``. Everything is drawn from ``numpy.random.default_rng(seed)``,
so the data are the same on every machine (integer draws and float32 arithmetic on the host).

``load_cifar10(path)``: CIFAR-10 in its published "python version" (Krizhevsky 2009), the directory
``cifar-10-batches-py`` or the archive ``cifar-10-python.tar.gz``: pickled dictionaries whose ``b"data"`` is a
``10000 x 3072`` uint8 array, each row the 1024 red, then green, then blue pixels of a 32x32 image
in row-major order, and ``b"labels"`` a list of 10,000 integers in 0..9. Files ``data_batch_1`` to
``data_batch_5`` are the training set, ``test_batch`` the test set.

``load_fashion_mnist(path)``: Fashion-MNIST (Xiao et al. 2017) in the IDX format of MNIST (LeCun et al.):
a big-endian header (two zero bytes, a type byte ``0x08`` for unsigned bytes, the number of dimensions,
then each dimension as a 32-bit integer) followed by the data; files
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each possibly gzipped (``.gz``). The 28x28 grey images are repeated over
three channels, so the same networks read them.

Nothing here downloads: the real data sets are read from a path the reader provides.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "LAYOUTS", "COLOR_STROKE_CLASSES", "GREY_CEILING", "colored_strokes", "load_cifar10",
           "load_fashion_mnist", "read_idx", "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES"]


@dataclass(frozen=True)
class Dataset:
    """Images ``(N, H, W, 3)`` float32 in about ``[0, 1]`` and integer labels, split into train and test."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple = ()


# --------------------------------------------------------------------------------------------------
# Generated: coloured strokes
# --------------------------------------------------------------------------------------------------

#: The four layouts: ``(orientation of stroke A, orientation of stroke B, where B starts relative to A)``,
#: orientations ``"h"`` (horizontal) or ``"v"`` (vertical); offsets in units of the strokes' length ``L``.
LAYOUTS = ("L", "T", "=", "||")

#: Class ``2 * layout + swapped``: stroke A red and B green, or (swapped) A green and B red.
COLOR_STROKE_CLASSES = tuple(f"{layout} {'green-red' if swapped else 'red-green'}"
                             for layout in LAYOUTS for swapped in (0, 1))

#: The best accuracy any function of the grey-level image can reach: the two classes of a swap pair
#: give the same distribution of grey pictures (the colours' draws are exchangeable), so such a
#: function is right on at most half of their images.
GREY_CEILING = 0.5


def _stroke_pixels(layout: str, length: int) -> tuple[list, list]:
    """Pixel coordinates ``(rows, cols)`` of strokes A and B of ``layout``, relative to A's first pixel."""
    span = range(length)
    if layout == "L":  # A vertical, B horizontal from A's bottom end, to the right
        a = [(i, 0) for i in span]
        b = [(length - 1, j) for j in range(1, length + 1)]
    elif layout == "T":  # A horizontal on top, B vertical down from A's middle
        a = [(0, j) for j in span]
        b = [(i, length // 2) for i in range(1, length + 1)]
    elif layout == "=":  # A horizontal above B, two rows apart
        a = [(0, j) for j in span]
        b = [(2, j) for j in span]
    elif layout == "||":  # A vertical left of B, two columns apart
        a = [(i, 0) for i in span]
        b = [(i, 2) for i in span]
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return a, b


def colored_strokes(n_train: int = 4096, n_test: int = 2048, size: int = 16, noise: float = 0.35,
                    seed: int = 0) -> Dataset:
    """The coloured-strokes data set (module docstring): ``n_train`` + ``n_test`` images of
    ``size x size x 3``, 8 balanced classes, generated from ``seed``.

    Per image: a layout and a swap bit (the class, uniformly); a stroke length ``L`` in {3, 4, 5}; a
    position where the whole figure fits; a red ``(1, u, v)`` and a green ``(u', 1, v')`` colour with
    ``u, v, u', v'`` uniform in ``[0, 0.4]``; a brightness in ``[0.6, 1]`` per stroke; a distractor
    stroke of length ``L``, random orientation, position and colour (each channel uniform in
    ``[0, 1]``); then Gaussian noise of standard deviation ``noise`` on every pixel, over a background of 0.
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer of at least 8 pixels, got {size!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be at least 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    labels = np.arange(n) % len(COLOR_STROKE_CLASSES)
    rng.shuffle(labels)
    images = np.zeros((n, size, size, 3), np.float32)
    for k in range(n):
        layout, swapped = LAYOUTS[labels[k] // 2], labels[k] % 2
        length = int(rng.integers(3, 6))
        a, b = _stroke_pixels(layout, length)
        rows = [r for r, _ in a + b]
        cols = [c for _, c in a + b]
        top = int(rng.integers(0, size - max(rows)))
        left = int(rng.integers(0, size - max(cols)))
        red = np.array([1.0, *rng.uniform(0, 0.4, 2)], np.float32)
        green = np.array([rng.uniform(0, 0.4), 1.0, rng.uniform(0, 0.4)], np.float32)
        colors = (green, red) if swapped else (red, green)
        # the distractor first, so that the figure is drawn over it
        d_len = length
        if rng.integers(2):
            r0, c0 = int(rng.integers(0, size)), int(rng.integers(0, size - d_len + 1))
            images[k, r0, c0:c0 + d_len] = rng.uniform(0, 1, 3)
        else:
            r0, c0 = int(rng.integers(0, size - d_len + 1)), int(rng.integers(0, size))
            images[k, r0:r0 + d_len, c0] = rng.uniform(0, 1, 3)
        for stroke, color in zip((a, b), colors):
            bright = np.float32(rng.uniform(0.6, 1.0))
            for r, c in stroke:
                images[k, top + r, left + c] = bright * color
    images += rng.normal(0.0, noise, images.shape).astype(np.float32)
    labels = labels.astype(np.int32)
    return Dataset(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], COLOR_STROKE_CLASSES)


# --------------------------------------------------------------------------------------------------
# Real data, from the reader's disk
# --------------------------------------------------------------------------------------------------

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def _cifar_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = pickle.loads(raw, encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{name} is not a CIFAR-10 python batch (a dict with b'data' and b'labels')")
    data = np.asarray(batch[b"data"], np.uint8)
    labels = np.asarray(batch[b"labels"], np.int32)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{name}: expected data of shape (N, 3072) and N labels, got {data.shape} and {len(labels)}")
    # each row: 1024 red, 1024 green, 1024 blue values, each a 32x32 image in row-major order
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def load_cifar10(path, train_batches: int = 5) -> Dataset:
    """CIFAR-10 from ``path``: the directory ``cifar-10-batches-py`` (or one that contains it), or the
    archive ``cifar-10-python.tar.gz``. Images ``(N, 32, 32, 3)`` float32 in [0, 1]; the first
    ``train_batches`` training files (10,000 images each) and the test file."""
    path = Path(path)
    if not 1 <= train_batches <= 5:
        raise ValueError(f"train_batches must be between 1 and 5, got {train_batches}")
    names = [f"data_batch_{i}" for i in range(1, train_batches + 1)] + ["test_batch"]
    if path.is_file():
        with tarfile.open(path) as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in names if name not in members]
            if missing:
                raise FileNotFoundError(f"{path} has no CIFAR-10 batch {missing[0]}")
            raw = {name: archive.extractfile(members[name]).read() for name in names}
    else:
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"no CIFAR-10 batch {missing[0]} in {folder}")
        raw = {name: (folder / name).read_bytes() for name in names}
    parts = [_cifar_batch(raw[name], name) for name in names]
    x_train = np.concatenate([p[0] for p in parts[:-1]])
    y_train = np.concatenate([p[1] for p in parts[:-1]])
    x_test, y_test = parts[-1]
    return Dataset(x_train.astype(np.float32) / 255, y_train, x_test.astype(np.float32) / 255, y_test,
                   CIFAR10_CLASSES)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path) -> np.ndarray:
    """An array from an IDX file (gzipped if its name ends in ``.gz``): magic ``00 00 type ndim``, then
    ``ndim`` big-endian 32-bit sizes, then the values in row-major order."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes), the file holds {len(body)}")
    return np.frombuffer(body, dtype).reshape(shape)


def load_fashion_mnist(path) -> Dataset:
    """Fashion-MNIST from the directory ``path`` holding its four IDX files (gzipped or not). Images
    ``(N, 28, 28, 3)`` float32 in [0, 1] (the grey channel repeated three times)."""
    folder = Path(path)

    def find(stem):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
        raise FileNotFoundError(f"no Fashion-MNIST file {stem}[.gz] in {folder}")

    def images(stem):
        x = read_idx(find(stem))
        if x.ndim != 3:
            raise ValueError(f"{stem}: expected images of shape (N, rows, cols), got {x.shape}")
        return np.repeat(x.astype(np.float32)[..., None] / 255, 3, axis=-1)

    def labels(stem):
        y = read_idx(find(stem))
        if y.ndim != 1:
            raise ValueError(f"{stem}: expected labels of shape (N,), got {y.shape}")
        return y.astype(np.int32)

    x_train, y_train = images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte")
    x_test, y_test = images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte")
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise ValueError(f"Fashion-MNIST {name}: {len(x)} images but {len(y)} labels")
    return Dataset(x_train, y_train, x_test, y_test, FASHION_MNIST_CLASSES)
