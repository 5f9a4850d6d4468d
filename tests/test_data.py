"""Tests of vae_jax.data.datasets: IDX / .amat readers, lookup order, errors, binarisation, tfds route."""

import gzip
import hashlib
import os
import sys
import time

import numpy as np
import pytest
from conftest import REQUIRE_ENV_VAR, require_or_skip
from vae_jax.data.datasets import BINARIZE_MODES, DATASETS, DataError, Split, image_shape, load_dataset

from vae_jax.data import datasets

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the real binarised MNIST may be: $VAE_JAX_DATA_DIR (read here, at import, because the
# autouse fixture below unsets it), then ../shared/data beside the checkout (CI's layout).
REAL_DATA_DIRS = tuple(
    d for d in (os.environ.get(datasets.ENV_VAR), os.path.normpath(os.path.join(REPO, "..", "shared", "data"))) if d
)


@pytest.fixture(autouse=True)
def _isolate_env(tmp_path, monkeypatch):
    """No user data dir, and an empty TFDS home, so only the files a test writes are found."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_home"))


# ----------------------------------------------------------------------------- writers


def _write(path, payload, gz):
    path = str(path) + (".gz" if gz else "")
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if gz else payload)
    return path


def write_idx(path, arr, *, gz=False, magic=None, truncate=0, extra=b""):
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x800 | arr.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + arr.tobytes() + extra
    if truncate:
        payload = payload[:-truncate]
    return _write(path, payload, gz)


def make_idx_dir(directory, *, gz=False, n_train=5, n_test=3, seed=0):
    """Writes the four MNIST IDX files; returns {split: (uint8 images, labels)}."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), images, gz=gz)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), labels, gz=gz)
        out[split] = (images, labels)
    return out


def amat_text(images01):
    return "".join(" ".join(str(int(v)) for v in row) + "\n" for row in images01).encode()


def make_amat_dir(directory, *, gz=False, sizes=(4, 2, 3), seed=0):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in zip(("train", "valid", "test"), sizes):
        images = (rng.random((n, 784)) < 0.3).astype(np.uint8)
        _write(os.path.join(directory, f"binarized_mnist_{split}.amat"), amat_text(images), gz)
        out[split] = images
    return out


# ----------------------------------------------------------------------------- basics


def test_names_and_shapes():
    assert DATASETS == ("mnist", "fashion_mnist", "binarized_mnist", "digits")
    assert image_shape("mnist") == (28, 28, 1)
    assert image_shape("binarized_mnist") == (28, 28, 1)
    assert image_shape("digits") == (8, 8, 1)
    with pytest.raises(DataError, match="fashion_mnist"):
        image_shape("cifar10")
    assert issubclass(DataError, ValueError)


def test_unknown_dataset_lists_datasets():
    with pytest.raises(DataError) as e:
        load_dataset("cifar10")
    for name in DATASETS:
        assert name in str(e.value)


def test_invalid_binarize_names_allowed_values():
    assert BINARIZE_MODES == ("none", "static")
    with pytest.raises(ValueError) as e:
        load_dataset("digits", binarize="fixed")
    assert isinstance(e.value, DataError)
    assert "'none'" in str(e.value) and "'static'" in str(e.value)


def test_dynamic_binarize_is_the_training_steps():
    """Dynamic binarisation is a fresh draw at every step (config.data.binarize), never one draw at load time."""
    with pytest.raises(DataError) as e:
        load_dataset("digits", binarize="dynamic")
    message = str(e.value)
    assert "training step" in message and "config.data.binarize=dynamic" in message
    assert 'binarize="static"' in message


# ----------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_reader(tmp_path, name, gz):
    written = make_idx_dir(tmp_path, gz=gz)
    splits = load_dataset(name, data_dir=str(tmp_path))
    assert set(splits) == {"train", "test"}
    for key, (images, labels) in written.items():
        s = splits[key]
        assert isinstance(s, Split)
        assert s.images.shape == (len(images), 28, 28, 1)
        assert s.images.dtype == np.float32
        assert s.labels.dtype == np.int32 and s.labels.shape == (len(images),)
        np.testing.assert_array_equal(s.labels, labels)
        np.testing.assert_allclose(s.images[..., 0], images / 255.0, atol=1e-7)
        assert s.images.min() == 0.0 and s.images.max() == 1.0


def test_idx_in_name_subfolder_and_uncompressed_preferred(tmp_path):
    make_idx_dir(tmp_path / "mnist", gz=True, seed=1)
    written = make_idx_dir(tmp_path / "mnist", gz=False, seed=2)  # raw wins over .gz
    splits = load_dataset("mnist", data_dir=str(tmp_path))
    np.testing.assert_array_equal(splits["test"].labels, written["test"][1])


def test_env_var_lookup(tmp_path, monkeypatch):
    written = make_idx_dir(tmp_path / "env" / "fashion_mnist", gz=True, n_train=4)
    monkeypatch.setenv("VAE_JAX_DATA_DIR", str(tmp_path / "env"))
    splits = load_dataset("fashion_mnist")
    assert splits["train"].images.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(splits["train"].labels, written["train"][1])


def test_data_dir_takes_precedence_over_env_var(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "env", n_train=4)
    make_idx_dir(tmp_path / "given", n_train=6)
    monkeypatch.setenv("VAE_JAX_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset("mnist")["train"].images.shape[0] == 4
    assert load_dataset("mnist", data_dir=str(tmp_path / "given"))["train"].images.shape[0] == 6


# ----------------------------------------------------------------------------- .amat reader


@pytest.mark.parametrize("gz", [False, True])
def test_amat_reader(tmp_path, gz):
    written = make_amat_dir(tmp_path / "binarized_mnist", gz=gz)
    splits = load_dataset("binarized_mnist", data_dir=str(tmp_path))
    assert list(splits) == ["train", "valid", "test"]
    for key, images in written.items():
        s = splits[key]
        assert s.labels is None
        assert s.images.dtype == np.float32 and s.images.shape == (len(images), 28, 28, 1)
        np.testing.assert_array_equal(s.images.reshape(len(images), 784), images)
    # Already binary: "static" leaves it unchanged.
    again = load_dataset("binarized_mnist", data_dir=str(tmp_path), binarize="static", seed=3)
    np.testing.assert_array_equal(again["train"].images, splits["train"].images)


def test_amat_other_whitespace_layout(tmp_path):
    images = (np.random.default_rng(0).random((3, 784)) < 0.5).astype(np.uint8)
    text = "".join("  " + "  ".join(map(str, row)) + " \r\n" for row in images).encode()
    for split in ("train", "valid", "test"):
        _write(tmp_path / f"binarized_mnist_{split}.amat", text + b"\n\n", gz=False)
    s = load_dataset("binarized_mnist", data_dir=str(tmp_path))["valid"]
    np.testing.assert_array_equal(s.images.reshape(3, 784), images)


def _amat_lines(n=3):
    return [" ".join(["0"] * 783 + ["1"]) for _ in range(n)]


@pytest.mark.parametrize(
    "bad_line, expect",
    [
        (" ".join(["0"] * 783 + ["2"]), "'2'"),  # non-0/1 value
        (" ".join(["0"] * 783), "783 values"),  # one value short
        (" ".join(["1"] * 785), "785 values"),  # one value too many
    ],
)
def test_amat_bad_line(tmp_path, bad_line, expect):
    make_amat_dir(tmp_path)
    lines = _amat_lines()
    lines[1] = bad_line
    path = _write(tmp_path / "binarized_mnist_test.amat", ("\n".join(lines) + "\n").encode(), False)
    with pytest.raises(DataError) as e:
        load_dataset("binarized_mnist", data_dir=str(tmp_path))
    msg = str(e.value)
    assert path in msg and "line 2" in msg and expect in msg


def test_amat_empty_file(tmp_path):
    make_amat_dir(tmp_path)
    path = _write(tmp_path / "binarized_mnist_valid.amat", b"\n", False)
    with pytest.raises(DataError, match="no images") as e:
        load_dataset("binarized_mnist", data_dir=str(tmp_path))
    assert path in str(e.value)


def amat_sha256(rows01: np.ndarray) -> str:
    """SHA-256 of ``rows01 [n, 784]`` (0/1) written in the .amat text format of the real files:
    each row as its 784 digits separated by single spaces, ending in a newline."""
    rows01 = np.asarray(rows01, np.uint8)
    text = np.full((rows01.shape[0], 2 * rows01.shape[1]), ord(" "), np.uint8)
    text[:, 0::2] = rows01 + ord("0")
    text[:, -1] = ord("\n")
    return hashlib.sha256(text.tobytes()).hexdigest()


def test_amat_sha256_is_the_file_format(tmp_path):
    images = make_amat_dir(tmp_path, sizes=(5, 1, 1))["train"]
    with open(tmp_path / "binarized_mnist_train.amat", "rb") as f:
        assert amat_sha256(images) == hashlib.sha256(f.read()).hexdigest()


def real_binarized_mnist_dir() -> str:
    """The first of `REAL_DATA_DIRS` with a ``binarized_mnist/`` folder. When none has one (a
    fresh clone without ``../shared/data``) the test skips, or fails under `REQUIRE_ENV_VAR` (CI)."""
    found = [d for d in REAL_DATA_DIRS if os.path.isdir(os.path.join(d, "binarized_mnist"))]
    require_or_skip(
        bool(found),
        "the real binarized MNIST is absent: no binarized_mnist/ folder in "
        + " or ".join(REAL_DATA_DIRS)
        + f" (set ${datasets.ENV_VAR} to the directory holding binarized_mnist/)",
    )
    return found[0]


def test_require_or_skip_fails_under_the_variable_and_skips_without_it(monkeypatch):
    require_or_skip(True, "present")  # a condition that holds: nothing happens, either way
    for value in (None, "", "0"):
        if value is None:
            monkeypatch.delenv(REQUIRE_ENV_VAR, raising=False)
        else:
            monkeypatch.setenv(REQUIRE_ENV_VAR, value)
        with pytest.raises(pytest.skip.Exception, match=f"data absent .*set \\${REQUIRE_ENV_VAR}=1"):
            require_or_skip(False, "data absent")
    monkeypatch.setenv(REQUIRE_ENV_VAR, "1")
    require_or_skip(True, "present")
    with pytest.raises(pytest.fail.Exception, match=f"data absent .*\\${REQUIRE_ENV_VAR} is set"):
        require_or_skip(False, "data absent")


def test_real_binarized_mnist_matches_its_checksums():
    """All three real splits, as the loader parses them, hash to the sums of the uncompressed files."""
    directory = real_binarized_mnist_dir()
    sums_path = os.path.join(directory, "binarized_mnist", "SHA256SUMS.amat")
    with open(sums_path) as f:  # present wherever the data are: a missing file fails, it is no skip
        sums = {name: digest for digest, name in (line.split() for line in f if line.strip())}
    splits = load_dataset("binarized_mnist", data_dir=directory)
    assert list(splits) == ["train", "valid", "test"]
    for split, n in (("train", 50000), ("valid", 10000), ("test", 10000)):
        s = splits[split]
        assert s.labels is None
        assert s.images.dtype == np.float32 and s.images.shape == (n, 28, 28, 1), split
        rows = s.images.reshape(n, 784)
        assert np.array_equal(rows, rows.astype(bool)), split  # values exactly 0 or 1
        assert 0.12 < rows.mean() < 0.14, split  # ~13% of binarized MNIST pixels are on
        assert amat_sha256(rows) == sums[f"binarized_mnist_{split}.amat"], split


# ----------------------------------------------------------------------------- corrupt files


def test_bad_magic_number(tmp_path):
    make_idx_dir(tmp_path)
    labels = np.zeros(5, np.uint8)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", labels)  # a labels file
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert path in str(e.value) and "magic" in str(e.value)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_image_file(tmp_path, gz):
    make_idx_dir(tmp_path, gz=gz)
    images = np.zeros((5, 28, 28), np.uint8)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", images, gz=gz, truncate=100)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert path in str(e.value) and "truncated" in str(e.value)


def test_trailing_bytes_in_image_file(tmp_path):
    make_idx_dir(tmp_path)
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)), extra=b"xx")
    with pytest.raises(DataError, match="trailing") as e:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert path in str(e.value)


def test_wrong_image_size(tmp_path):
    make_idx_dir(tmp_path)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 27, 28)))
    with pytest.raises(DataError, match="28x28") as e:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert path in str(e.value)


def test_mismatched_label_count(tmp_path):
    make_idx_dir(tmp_path)
    lbl = write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=str(tmp_path))
    msg = str(e.value)
    assert lbl in msg and os.path.join(str(tmp_path), "t10k-images-idx3-ubyte") in msg
    assert "3 images" in msg and "4 labels" in msg


def test_label_out_of_range(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 10, 2], np.uint8))
    with pytest.raises(DataError, match="0..9"):
        load_dataset("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize("name", ["mnist", "binarized_mnist"])
def test_corrupt_gzip(tmp_path, name):
    if name == "mnist":
        make_idx_dir(tmp_path, gz=True)
        target = tmp_path / "train-labels-idx1-ubyte.gz"
    else:
        make_amat_dir(tmp_path, gz=True)
        target = tmp_path / "binarized_mnist_train.amat.gz"
    good = target.read_bytes()
    for payload in (b"this is not gzip at all", good[: len(good) // 2]):  # garbage, truncated
        target.write_bytes(payload)
        with pytest.raises(DataError, match="gzip") as e:
            load_dataset(name, data_dir=str(tmp_path))
        assert str(target) in str(e.value)


def test_validate_rejects_nan_and_out_of_range():
    ok = np.zeros((2, 28, 28, 1), np.float32)
    assert datasets._validate(ok, np.array([1, 2]), name="mnist", where="here").labels.dtype == np.int32
    bad = ok.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="here.*NaN"):
        datasets._validate(bad, None, name="mnist", where="here")
    bad[0, 0, 0, 0] = 1.5
    with pytest.raises(DataError, match=r"here.*\[0, 1\]"):
        datasets._validate(bad, None, name="mnist", where="here")
    with pytest.raises(DataError, match="shape"):
        datasets._validate(ok, None, name="digits", where="here")


# ----------------------------------------------------------------------------- not found


def test_not_found_message_and_speed(tmp_path, monkeypatch):
    monkeypatch.setitem(datasets.SYSTEM_DIRS, "fashion_mnist", (str(tmp_path / "no_debian"),))
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("mnist", "fashion_mnist", "binarized_mnist"):
        start = time.perf_counter()
        with pytest.raises(DataError) as e:
            load_dataset(name, data_dir=str(empty))
        assert time.perf_counter() - start < 2.0
        msg = str(e.value)
        assert str(empty) in msg and os.path.join(str(empty), name) in msg
        assert os.path.join(str(empty), "tensorflow_datasets", name) in msg
        assert "--config.data.data_dir=DIR" in msg and "VAE_JAX_DATA_DIR" in msg
        assert "pip install -e .[tfds]" in msg and "--config.data.download=True" in msg
        if name == "fashion_mnist":
            assert "apt-get install dataset-fashion-mnist" in msg
            assert str(tmp_path / "no_debian") in msg


def test_not_found_lists_missing_files_and_env_dir(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "env" / "mnist")
    os.remove(tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte")
    monkeypatch.setenv("VAE_JAX_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError) as e:
        load_dataset("mnist")
    msg = str(e.value)
    assert os.path.join(str(tmp_path / "env"), "mnist") in msg
    assert "missing: t10k-labels-idx1-ubyte" in msg


def test_download_without_tfds_says_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import -> ImportError
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=str(tmp_path), download=True)
    assert "pip install -e .[tfds]" in str(e.value)


# ----------------------------------------------------------------------------- binarisation


def test_static_binarization(tmp_path):
    directory = tmp_path / "mnist"
    directory.mkdir()
    grey = np.full((200, 28, 28), 77, np.uint8)  # 77/255 ~ 0.302
    grey[:, :, :14] = 200
    write_idx(directory / "train-images-idx3-ubyte", grey)
    write_idx(directory / "train-labels-idx1-ubyte", np.arange(200) % 10)
    write_idx(directory / "t10k-images-idx3-ubyte", grey[:10])
    write_idx(directory / "t10k-labels-idx1-ubyte", np.arange(10))
    plain = load_dataset("mnist", data_dir=str(tmp_path))
    a = load_dataset("mnist", data_dir=str(tmp_path), binarize="static", seed=0)
    b = load_dataset("mnist", data_dir=str(tmp_path), binarize="static", seed=0)
    c = load_dataset("mnist", data_dir=str(tmp_path), binarize="static", seed=1)
    x = a["train"].images
    assert x.dtype == np.float32 and x.shape == plain["train"].images.shape
    assert set(np.unique(x)) == {0.0, 1.0}
    assert abs(x.mean() - plain["train"].images.mean()) < 0.01
    assert abs(x[..., :14, :].mean() - 200 / 255) < 0.01
    np.testing.assert_array_equal(x, b["train"].images)  # deterministic with the seed
    np.testing.assert_array_equal(a["test"].images, b["test"].images)
    assert not np.array_equal(x, c["train"].images)
    np.testing.assert_array_equal(a["train"].labels, plain["train"].labels)
    assert plain["train"].images.max() < 1.0  # the grey load itself was not binarised


# ----------------------------------------------------------------------------- digits


def test_digits():
    splits = load_dataset("digits")
    assert set(splits) == {"train", "test"}
    assert splits["train"].images.shape == (1500, 8, 8, 1)
    assert splits["test"].images.shape == (297, 8, 8, 1)
    assert splits["train"].labels.shape == (1500,) and splits["test"].labels.dtype == np.int32
    x = splits["train"].images
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    again = load_dataset("digits", seed=5)  # the split does not depend on the seed
    np.testing.assert_array_equal(again["test"].images, splits["test"].images)
    binary = load_dataset("digits", binarize="static")
    assert set(np.unique(binary["test"].images)) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- real Debian files


def test_debian_fashion_mnist(tmp_path, monkeypatch):
    """Real Fashion-MNIST from Debian's dataset-fashion-mnist (installed on CI and here)."""
    if os.path.isdir(DEBIAN_FASHION):
        start = time.perf_counter()
        splits = load_dataset("fashion_mnist")
        elapsed = time.perf_counter() - start
        assert elapsed < 10.0, elapsed  # ~1 s normally; generous for loaded machines
        train, test = splits["train"], splits["test"]
        assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
        assert train.images.dtype == np.float32
        assert train.images.min() == 0.0 and train.images.max() == 1.0
        assert np.array_equal(np.bincount(train.labels), np.full(10, 6000))
        assert 0.2 < train.images.mean() < 0.4  # Fashion-MNIST mean is ~0.286
        start = time.perf_counter()
        load_dataset("fashion_mnist")  # parsed files are cached in memory
        assert time.perf_counter() - start < 5.0
    else:
        with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
            load_dataset("fashion_mnist", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- tfds route


def test_tfds_route_with_mock_data(tmp_path):
    """tensorflow-datasets route, with tfds.testing.mock_data (no network)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # tfds extra not installed: the error says how to install it
        with pytest.raises(DataError, match=r"pip install -e \.\[tfds\]"):
            load_dataset("mnist", data_dir=str(tmp_path), download=True)
        return

    with tfds.testing.mock_data(num_examples=6):
        # Not prepared and download=False: tfds is never called (it would succeed under mock).
        with pytest.raises(DataError, match="not found"):
            load_dataset("mnist", data_dir=str(tmp_path / "a"))

        # A prepared copy (<data_dir>/tensorflow_datasets/<name>/<version>/dataset_info.json)
        # is used without download=True.
        prepared = tmp_path / "p" / "tensorflow_datasets" / "mnist" / "3.0.1"
        prepared.mkdir(parents=True)
        (prepared / "dataset_info.json").write_text("{}")
        splits = load_dataset("mnist", data_dir=str(tmp_path / "p"))
        assert splits["train"].images.shape == (6, 28, 28, 1)

        splits = load_dataset("mnist", data_dir=str(tmp_path / "a"), download=True)
        assert set(splits) == {"train", "test"}
        for s in splits.values():
            assert s.images.shape == (6, 28, 28, 1) and s.images.dtype == np.float32
            assert 0.0 <= s.images.min() and s.images.max() <= 1.0 and s.images.max() > 0.5
            assert s.labels.shape == (6,) and s.labels.dtype == np.int32
            assert 0 <= s.labels.min() and s.labels.max() <= 9

        binary = load_dataset("fashion_mnist", data_dir=str(tmp_path / "b"), download=True, binarize="static")
        assert set(np.unique(binary["train"].images)) <= {0.0, 1.0}

        # Mock binarized_mnist images are random uint8 (not 0/1): rejected by validation.
        with pytest.raises(DataError, match="0/1"):
            load_dataset("binarized_mnist", data_dir=str(tmp_path / "c"), download=True)

    with tfds.testing.mock_data(num_examples=4, max_value=2):  # values 0/1
        splits = load_dataset("binarized_mnist", data_dir=str(tmp_path / "c"), download=True)
        assert list(splits) == ["train", "valid", "test"]
        for s in splits.values():
            assert s.labels is None
            assert s.images.shape == (4, 28, 28, 1)
            assert set(np.unique(s.images)) <= {0.0, 1.0}
