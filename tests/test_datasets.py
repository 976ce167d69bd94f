"""The generated data set's construction, and the real-data loaders on small files written here in
exactly the published formats (CIFAR-10's python pickles, Fashion-MNIST's IDX), never downloaded."""

import gzip
import pickle
import struct
import tarfile

import numpy as np
import pytest

from sepconv.datasets import (COLOR_STROKE_CLASSES, GREY_CEILING, colored_strokes, load_cifar10, load_fashion_mnist,
                              read_idx)


def test_colored_strokes_is_deterministic_balanced_and_shaped():
    a, b = colored_strokes(64, 32, size=12, seed=5), colored_strokes(64, 32, size=12, seed=5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.shape == (64, 12, 12, 3) and a.x_test.shape == (32, 12, 12, 3)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int32
    assert len(COLOR_STROKE_CLASSES) == 8 and a.classes == COLOR_STROKE_CLASSES
    # 96 images, 8 classes dealt in turn before shuffling: 12 of each
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=8)
    assert counts.tolist() == [12] * 8
    assert not np.array_equal(colored_strokes(64, 32, size=12, seed=6).x_train, a.x_train)


def test_without_noise_a_swap_exchanges_the_red_and_green_strokes():
    """Noise-free images: each class's figure is in the red channel where its name says red. In class
    "= red-green" (A above B, A red) the red stroke's rows lie above the green one's, in "= green-red"
    below; a grey-level copy cannot tell the two apart by where the strokes are."""
    data = colored_strokes(400, 8, size=16, noise=0.0, seed=1)
    above, below = COLOR_STROKE_CLASSES.index("= red-green"), COLOR_STROKE_CLASSES.index("= green-red")
    for cls, red_on_top in ((above, True), (below, False)):
        for image in data.x_train[data.y_train == cls][:10]:
            # the strokes' pixels: red has channel 0 at its brightness and channel 1 at most 0.4 of it
            red = (image[..., 0] >= 0.6) & (image[..., 1] <= 0.4 * image[..., 0] + 1e-6)
            green = (image[..., 1] >= 0.6) & (image[..., 0] <= 0.4 * image[..., 1] + 1e-6)
            red_rows, green_rows = np.nonzero(red.any(axis=1))[0], np.nonzero(green.any(axis=1))[0]
            # the distractor may add a row of either colour; the figure's two rows are two apart
            pairs = [(r, g) for r in red_rows for g in green_rows if abs(r - g) == 2]
            assert pairs and any((r < g) == red_on_top for r, g in pairs)
    assert GREY_CEILING == 0.5


def test_colored_strokes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size must be an integer of at least 8 pixels, got 4"):
        colored_strokes(8, 8, size=4)
    with pytest.raises(ValueError, match="n_train must be a positive integer, got 0"):
        colored_strokes(0, 8)
    with pytest.raises(ValueError, match="noise must be at least 0, got -1"):
        colored_strokes(8, 8, noise=-1)


def _cifar_batch(rng, n):
    """A batch as the CIFAR-10 python version stores it (written by Python 2: bytes keys)."""
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    rows = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # 1024 red, 1024 green, 1024 blue, row-major
    return images, labels, {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": rows,
                            b"filenames": [b"x.png"] * n}


def _write_cifar(folder, rng):
    folder.mkdir()
    expected = {}
    for name, n in [(f"data_batch_{i}", 3) for i in range(1, 6)] + [("test_batch", 4)]:
        images, labels, batch = _cifar_batch(rng, n)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        expected[name] = (images, labels)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    return expected


def test_cifar10_loader_reads_the_published_python_format(tmp_path):
    rng = np.random.default_rng(0)
    expected = _write_cifar(tmp_path / "cifar-10-batches-py", rng)
    for source in (tmp_path, tmp_path / "cifar-10-batches-py"):
        data = load_cifar10(source)
        assert data.x_train.shape == (15, 32, 32, 3) and data.x_test.shape == (4, 32, 32, 3)
        # pixel (row 1, column 2) of the first training image, channel by channel, from the raw row:
        # red at 1 * 32 + 2, green 1024 later, blue 2048 later
        raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
        assert [round(float(v) * 255) for v in data.x_train[0, 1, 2]] == [int(raw[0, 34]), int(raw[0, 1058]),
                                                                           int(raw[0, 2082])]
        np.testing.assert_array_equal(data.x_test * 255, expected["test_batch"][0].astype(np.float32))
        assert data.y_train.tolist() == sum((expected[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_archive = load_cifar10(archive, train_batches=2)
    assert from_archive.x_train.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(from_archive.x_test, data.x_test)


def test_cifar10_loader_names_what_is_missing_or_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 batch data_batch_1"):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="train_batches must be between 1 and 5, got 6"):
        load_cifar10(tmp_path, train_batches=6)
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    (tmp_path / "test_batch").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"data_batch_1: expected data of shape \(N, 3072\)"):
        load_cifar10(tmp_path, train_batches=1)


def _idx(array, dtype_code=0x08):
    header = struct.pack(">BBBB", 0, 0, dtype_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1").tobytes()


def test_fashion_mnist_loader_reads_idx_files_gzipped_or_not(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    y_train, y_test = np.array([9, 0, 3, 1, 2], np.uint8), np.array([7, 7, 0], np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(train)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(y_train)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(test))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(y_test))
    # the header by hand: magic 0x00000803, then 5, 28, 28 as big-endian 32-bit integers
    assert gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())[:16] == bytes(
        [0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28])
    data = load_fashion_mnist(tmp_path)
    assert data.x_train.shape == (5, 28, 28, 3) and data.x_test.shape == (3, 28, 28, 3)
    assert data.y_train.tolist() == [9, 0, 3, 1, 2] and data.y_test.tolist() == [7, 7, 0]
    assert [round(float(v) * 255) for v in data.x_train[2, 10, 20]] == [int(train[2, 10, 20])] * 3
    assert data.classes[9] == "Ankle boot"


def test_idx_reader_rejects_a_wrong_file(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x1f\x8b\x08\x00rest")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ValueError, match=r"header says shape \(2, 3\) \(6 bytes\), the file holds 5"):
        read_idx(short)
    with pytest.raises(FileNotFoundError, match="no Fashion-MNIST file train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path)
