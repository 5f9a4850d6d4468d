"""Any images as data (vae_jax.data.image_ops, image_folder, image_arrays, tfds_images; docs/data.md).

Offline: folders of PNG/JPEG files and .npz/.npy arrays written here, tensorflow-datasets through
``tfds.testing.mock_data``, Fashion-MNIST's real IDX files (Debian's dataset-fashion-mnist) or,
without them, generated ones. The same images must reach the model by every route, every kind
of bad data must stop with a `DataError` naming it, and the CLI and the two new configs train.
"""

import gzip
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, TINY_CLI_FLAGS
from PIL import Image
from vae_jax.data.datasets import DataError, load_dataset
from vae_jax.data.image_ops import ImageOptions

from vae_jax import config as config_lib
from vae_jax.data import datasets, image_ops
from vae_jax.errors import ConfigError
from vae_jax.training import run, validation

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
NUM_TRAIN, NUM_TEST = 240, 60  # the first images of each Fashion-MNIST split


@pytest.fixture(autouse=True)
def _isolate_env(tmp_path, monkeypatch):
    """No user data dir, and an empty TFDS home, so only what a test writes is found."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_home"))


# ----------------------------------------------------------------------------- writers


def save_png(path, array) -> str:
    """Writes uint8 ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` as a PNG (``[H, W, 4]``: RGBA)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.asarray(array, np.uint8)
    Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array).save(path)
    return str(path)


def write_idx(path, array) -> None:
    array = np.asarray(array, np.uint8)
    header = (0x800 | array.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_folder(root, splits: dict, *, classes: bool = True) -> str:
    """``splits``: {split: (uint8 images [N, H, W(, C)], labels)} as ``root/<split>/[<label>/]<i>.png``."""
    for split, (images, labels) in splits.items():
        for i, image in enumerate(images):
            folder = os.path.join(root, split, str(labels[i])) if classes else os.path.join(root, split)
            save_png(os.path.join(folder, f"{i:05d}.png"), image)
    return str(root)


def _read_idx_gz(path, offset, count, shape=()):
    raw = gzip.open(path).read()
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return np.frombuffer(raw, np.uint8, count=count * size, offset=offset).reshape((count, *shape))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """The first Fashion-MNIST images of each split (real files, or generated without them)
    written as IDX files, as a PNG folder with class sub-folders and as .npz arrays."""
    if os.path.isdir(DEBIAN_FASHION):
        splits = {}
        for split, prefix, n in (("train", "train", NUM_TRAIN), ("test", "t10k", NUM_TEST)):
            images = _read_idx_gz(os.path.join(DEBIAN_FASHION, f"{prefix}-images-idx3-ubyte.gz"), 16, n, (28, 28))
            labels = _read_idx_gz(os.path.join(DEBIAN_FASHION, f"{prefix}-labels-idx1-ubyte.gz"), 8, n)
            splits[split] = (images, labels)
    else:
        rng = np.random.default_rng(0)
        prototypes = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
        splits = {}
        for split, n in (("train", NUM_TRAIN), ("test", NUM_TEST)):
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            noise = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
            splits[split] = ((prototypes[labels] // 2 + noise).astype(np.uint8), labels)
    root = tmp_path_factory.mktemp("fashion")
    idx = root / "idx"
    idx.mkdir()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(idx / f"{prefix}-images-idx3-ubyte", splits[split][0])
        write_idx(idx / f"{prefix}-labels-idx1-ubyte", splits[split][1])
    np.savez(
        root / "fashion.npz",
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
    )
    return {
        "splits": splits,
        "idx": str(idx),
        "npz": str(root / "fashion.npz"),
        "folder": write_folder(root / "png", splits),
        "flat": write_folder(root / "flat", splits, classes=False),
    }


# ----------------------------------------------------------------------------- one image, every route


@pytest.mark.parametrize(
    "options", [ImageOptions(), ImageOptions(crop=20, image_size=14, channels=3)], ids=["as_stored", "crop_resize_rgb"]
)
def test_fashion_mnist_reaches_the_model_the_same_by_every_route(fashion, options):
    """IDX files, a folder of PNGs and .npz arrays of the same images give exactly equal arrays."""
    kwargs = dict(crop=options.crop, image_size=options.image_size, channels=options.channels)
    idx = load_dataset("fashion_mnist", data_dir=fashion["idx"], **kwargs)
    npz = load_dataset("arrays", data_dir=fashion["npz"], **kwargs)
    folder = load_dataset("folder", data_dir=fashion["folder"], **kwargs)
    flat = load_dataset("folder", data_dir=fashion["flat"], **kwargs)
    shape = (28, 28, 1) if options.identity else (14, 14, 3)
    for split in ("train", "test"):
        images, labels = fashion["splits"][split]
        assert idx[split].images.shape == (len(images), *shape) and idx[split].images.dtype == np.float32
        if options.identity:
            np.testing.assert_array_equal(idx[split].images[..., 0], images.astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(idx[split].labels, labels)
        for other in (npz, flat):
            np.testing.assert_array_equal(other[split].images, idx[split].images)
        np.testing.assert_array_equal(npz[split].labels, idx[split].labels)
        assert flat[split].labels is None  # images directly in the split folders: no labels
        # Class sub-folders are read class by class, each in file-name order.
        order = np.argsort(labels, kind="stable")
        np.testing.assert_array_equal(folder[split].images, idx[split].images[order])
        np.testing.assert_array_equal(folder[split].labels, labels[order])
    assert set(idx) == set(npz) == set(folder) == {"train", "test"}


def test_crop_resize_and_channels_are_the_documented_steps(fashion):
    images = fashion["splits"]["train"][0][:5, :, :, None]
    out = image_ops.transform(images, ImageOptions(crop=20, image_size=14, channels=3), "here")
    x = images[:, 4:24, 4:24, 0].astype(np.float32) / np.float32(255)
    for i in range(5):
        resized = np.asarray(Image.fromarray(x[i]).resize((14, 14), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(out[i], np.repeat(np.clip(resized, 0, 1)[..., None], 3, axis=-1))
    colour = np.random.default_rng(0).integers(0, 256, (3, 9, 12, 3), dtype=np.uint8)
    grey = image_ops.transform(colour, ImageOptions(channels=1), "here")
    c = colour.astype(np.float32) / np.float32(255)
    luma = c[..., 0] * np.float32(0.299) + c[..., 1] * np.float32(0.587) + c[..., 2] * np.float32(0.114)
    np.testing.assert_allclose(grey[..., 0], luma, atol=1e-7)
    square = image_ops.transform(colour, ImageOptions(image_size=6), "here")  # non-square: centre square, then resize
    np.testing.assert_array_equal(square, image_ops.transform(colour[:, :, 1:10], ImageOptions(image_size=6), "here"))
    assert square.shape == (3, 6, 6, 3) and 0 <= square.min() and square.max() <= 1
    big = np.full((300, 10, 10, 1), 255, np.uint8)  # enough images for the thread pool
    np.testing.assert_array_equal(image_ops.transform(big, ImageOptions(image_size=4), "here"), np.ones((300, 4, 4, 1)))


def test_builtin_names_take_the_options_too():
    plain = load_dataset("digits")
    big = load_dataset("digits", image_size=16, channels=3)
    assert big["train"].images.shape == (1500, 16, 16, 3)
    np.testing.assert_array_equal(big["test"].labels, plain["test"].labels)
    expected = image_ops.transform(plain["test"].images, ImageOptions(image_size=16, channels=3), "here")
    np.testing.assert_array_equal(big["test"].images, expected)


# ----------------------------------------------------------------------------- folders


def _grey_images(n, size=(8, 8), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *size), dtype=np.uint8)


def test_folder_without_split_folders_holds_out_test_and_validation(tmp_path):
    images = _grey_images(50)
    for i, image in enumerate(images):
        save_png(tmp_path / "d" / ("a" if i % 2 else "b") / f"{i:03d}.png", image)
    (tmp_path / "d" / "README.txt").write_text("not an image")  # ignored
    splits = load_dataset("folder", data_dir=str(tmp_path / "d"), test_fraction=0.2, valid_fraction=0.1)
    assert [(k, len(s)) for k, s in splits.items()] == [("train", 35), ("valid", 5), ("test", 10)]
    # Listing order: class a (odd i), then class b (even i); labels a = 0, b = 1.
    listed = np.concatenate([images[1::2], images[0::2]]).astype(np.float32) / np.float32(255)
    labels = np.array([0] * 25 + [1] * 25)
    train, valid, test = datasets.held_out(50, valid=5, test=10, split_seed=0)
    for key, index in (("train", train), ("valid", valid), ("test", test)):
        np.testing.assert_array_equal(splits[key].images[..., 0], listed[index])
        np.testing.assert_array_equal(splits[key].labels, labels[index])
    # The test images depend on split_seed only, not on valid_fraction or the seed of the run.
    no_valid = load_dataset("folder", data_dir=str(tmp_path / "d"), test_fraction=0.2, seed=3)
    assert set(no_valid) == {"train", "test"}
    np.testing.assert_array_equal(no_valid["test"].images, splits["test"].images)
    other = load_dataset("folder", data_dir=str(tmp_path / "d"), test_fraction=0.2, split_seed=1)
    assert not np.array_equal(other["test"].images, splits["test"].images)


def test_folder_split_names_labels_and_modes(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 10, 10, 3), dtype=np.uint8)
    root = tmp_path / "d"
    for i in range(4):
        save_png(root / "train" / ("cat" if i < 2 else "dog") / f"{i}.png", rgb[i])
    rgba = np.concatenate([rgb[4], np.full((10, 10, 1), 7, np.uint8)], axis=-1)
    save_png(root / "validation" / "dog" / "rgba.png", rgba)  # alpha ignored
    Image.fromarray(rgb[5]).save(root / "validation" / "dog" / "photo.JPG", quality=95)  # any case
    palette = Image.fromarray(rgb[0]).convert("P")
    os.makedirs(root / "test" / "dog")
    palette.save(root / "test" / "dog" / "p.png")
    splits = load_dataset("folder", data_dir=str(root))
    assert list(splits) == ["train", "valid", "test"]
    assert splits["valid"].images.shape == (2, 10, 10, 3)
    np.testing.assert_array_equal(splits["train"].labels, [0, 0, 1, 1])  # sorted class names of all splits
    np.testing.assert_array_equal(splits["test"].labels, [1])
    np.testing.assert_array_equal(splits["valid"].images[1], rgb[4] / np.float32(255))  # "photo.JPG" < "rgba.png"
    expected = np.asarray(palette.convert("RGB"), np.float32) / np.float32(255)
    np.testing.assert_array_equal(splits["test"].images[0], expected)
    grey = load_dataset("folder", data_dir=str(root), channels=1)
    assert grey["train"].images.shape == (4, 10, 10, 1)


def test_folder_of_mixed_sizes_with_crop_and_resize(tmp_path):
    rng = np.random.default_rng(2)
    sizes = [(30, 40), (36, 36), (50, 44), (33, 31)] * 10
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    for i, image in enumerate(images):
        save_png(tmp_path / "d" / "train" / f"{i:03d}.png", image)
    for i in range(4):
        save_png(tmp_path / "d" / "test" / f"{i:03d}.png", images[i])
    splits = load_dataset("folder", data_dir=str(tmp_path / "d"), crop=24, image_size=12, channels=1)
    assert splits["train"].images.shape == (40, 12, 12, 1) and splits["test"].images.shape == (4, 12, 12, 1)
    for i in (0, 2):
        expected = image_ops.transform(images[i][None], ImageOptions(24, 12, 1), "x")[0]
        np.testing.assert_array_equal(splits["train"].images[i], expected)
    np.testing.assert_array_equal(splits["test"].images, splits["train"].images[:4])
    resized = load_dataset("folder", data_dir=str(tmp_path / "d"), image_size=16)  # centre squares, resized
    assert resized["train"].images.shape == (40, 16, 16, 3)
    with pytest.raises(DataError) as e:  # as stored they differ in size
        load_dataset("folder", data_dir=str(tmp_path / "d"))
    message = str(e.value)
    # Each size is a quarter of the images: the first listed (000.png, 30x40) counts as the common one.
    first_odd = str(tmp_path / "d" / "train" / "001.png")
    assert first_odd in message and "36x36" in message and "30x40" in message
    assert "--config.data.crop" in message and "--config.data.image_size" in message
    with pytest.raises(DataError, match=r"smaller than --config.data.crop=32") as e:
        load_dataset("folder", data_dir=str(tmp_path / "d"), crop=32)
    assert str(tmp_path / "d" / "train" / "000.png") in str(e.value)


def _folder_case(root, case):
    """Writes a bad folder; returns (data_dir, fragments the message must hold)."""
    grey = _grey_images(4, (28, 28))
    good = [save_png(root / "train" / f"{i}.png", grey[i]) for i in range(3)]
    if case == "empty":
        bare = root / "empty"
        bare.mkdir()
        (bare / "notes.txt").write_text("x")
        return bare, [str(bare), "no images", "notes.txt"]
    if case == "missing":
        return root / "nowhere", [str(root / "nowhere"), "does not exist"]
    if case == "not_an_image":
        bad = root / "train" / "1.png"
        bad.write_bytes(b"this is not a PNG")
        return root, [str(bad), "not a readable PNG or JPEG image"]
    if case == "truncated":
        bad = root / "train" / "2.png"
        bad.write_bytes(open(good[2], "rb").read()[:60])
        return root, [str(bad), "not a readable"]
    if case == "mixed_size":
        odd = save_png(root / "train" / "1b.png", _grey_images(1, (30, 32))[0])
        return root, [odd, "30x32", "28x28", "3 of the 4 images"]
    if case == "mixed_channels":
        odd = save_png(root / "train" / "0b.png", np.zeros((28, 28, 3), np.uint8))
        return root, [odd, "RGB (3 channels)", "grey (1 channel)", "--config.data.channels=1"]
    if case == "sixteen_bit":
        odd = root / "train" / "1b.png"
        Image.fromarray(np.zeros((28, 28), np.uint16)).save(odd)
        return root, [str(odd), "16- or 32-bit"]
    if case == "images_and_folders":
        save_png(root / "train" / "cls" / "0.png", grey[3])
        return root, [str(root / "train"), "both images", "cls"]
    if case == "empty_class":
        (root / "test" / "cls").mkdir(parents=True)
        return root, [str(root / "test" / "cls"), "no images"]
    if case == "stray_folder":
        save_png(root / "extra" / "0.png", grey[3])
        return root, [str(root), "extra/", "train/"]
    if case == "valid_twice":
        save_png(root / "valid" / "0.png", grey[3])
        save_png(root / "validation" / "0.png", grey[3])
        return root, [str(root), "valid/ and validation/"]
    if case == "labels_in_some_splits":
        save_png(root / "test" / "cls" / "0.png", grey[3])
        return root, [str(root), "test/ hold class sub-folders", "train/ hold images directly"]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "missing",
        "not_an_image",
        "truncated",
        "mixed_size",
        "mixed_channels",
        "sixteen_bit",
        "images_and_folders",
        "empty_class",
        "stray_folder",
        "valid_twice",
        "labels_in_some_splits",
    ],
)
def test_bad_folder_names_the_file_and_the_fix(tmp_path, case):
    directory, fragments = _folder_case(tmp_path / "d", case)
    with pytest.raises(DataError) as e:
        load_dataset("folder", data_dir=str(directory))
    for fragment in fragments:
        assert fragment in str(e.value), str(e.value)


def test_folder_needs_a_data_dir_and_test_images(tmp_path):
    with pytest.raises(DataError, match=r"--config.data.name=folder needs --config.data.data_dir"):
        load_dataset("folder")
    for i, image in enumerate(_grey_images(5)):
        save_png(tmp_path / "d" / f"{i}.png", image)
    with pytest.raises(DataError, match=r"no test split: .*--config.data.test_fraction=0.1"):
        load_dataset("folder", data_dir=str(tmp_path / "d"), test_fraction=0.0)
    with pytest.raises(DataError, match="too few"):
        load_dataset("folder", data_dir=str(tmp_path / "d"), test_fraction=0.6, valid_fraction=0.35)


# ----------------------------------------------------------------------------- arrays


def test_arrays_layouts(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 6, 7, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, 40)
    unit = images.astype(np.float32) / np.float32(255)
    np.save(tmp_path / "one.npy", images)  # one .npy file: the training images
    single = load_dataset("arrays", data_dir=str(tmp_path / "one.npy"))
    train, _, test = datasets.held_out(40, valid=0, test=4, split_seed=0)
    np.testing.assert_array_equal(single["test"].images, unit[test])
    np.testing.assert_array_equal(single["train"].images, unit[train])
    assert single["train"].labels is None
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "train_images.npy", images[:30])
    np.save(folder / "train_labels.npy", labels[:30])
    np.save(folder / "validation_images.npy", unit[30:35].astype(np.float64))  # floats in [0, 1] kept
    np.save(folder / "test_images.npy", images[35:, ..., :1][..., 0])  # (N, H, W): grey
    splits = load_dataset("arrays", data_dir=str(folder), channels=3)
    assert list(splits) == ["train", "valid", "test"]
    np.testing.assert_array_equal(splits["train"].labels, labels[:30])
    np.testing.assert_array_equal(splits["valid"].images, unit[30:35].astype(np.float64).astype(np.float32))
    np.testing.assert_array_equal(splits["test"].images, np.repeat(unit[35:, ..., :1], 3, axis=-1))
    keras = tmp_path / "keras"
    keras.mkdir()
    np.savez(keras / "mnist.npz", x_train=images[:30], y_train=labels[:30], x_test=images[30:], y_test=labels[30:])
    splits = load_dataset("arrays", data_dir=str(keras))  # a folder with one .npz
    np.testing.assert_array_equal(splits["test"].images, unit[30:])
    np.testing.assert_array_equal(splits["test"].labels, labels[30:])
    np.savez(tmp_path / "pair.npz", images=images, labels=labels)
    pair = load_dataset("arrays", data_dir=str(tmp_path / "pair.npz"), valid_fraction=0.25)
    assert [len(s) for s in pair.values()] == [26, 10, 4]
    np.testing.assert_array_equal(pair["test"].labels, labels[test])


def _arrays_case(root, case):
    """Writes bad arrays; returns (data_dir, fragments the message must hold)."""
    images = np.random.default_rng(4).integers(0, 256, (100, 4, 4), dtype=np.uint8)
    labels = np.arange(100) % 3
    path = root / "bad.npz"
    where = f"{path}[train_images]"
    arrays = {"train_images": images, "train_labels": labels}
    fragments = [where]
    if case == "dtype":
        arrays["train_images"] = images.astype(np.int64)
        fragments += ["dtype int64", "uint8", "float"]
    elif case == "rank":
        arrays["train_images"] = images.reshape(100, 16)
        fragments += ["(100, 16)", "rank 2"]
    elif case == "channels":
        arrays["train_images"] = np.zeros((100, 4, 4, 4), np.uint8)
        fragments += ["(100, 4, 4, 4)", "C = 1 (grey) or 3 (RGB)"]
    elif case == "label_count":
        arrays["train_labels"] = labels[:99]
        fragments = [f"{path}[train_labels]", "99 labels", "100 images", where]
    elif case == "label_dtype":
        arrays["train_labels"] = labels.astype(np.float32)
        fragments = [f"{path}[train_labels]", "dtype float32", "integers"]
    elif case == "negative_label":
        arrays["train_labels"] = labels - 1
        fragments = [f"{path}[train_labels]", "[-1, 1]", ">= 0"]
    elif case in ("nan", "inf"):
        floats = images / np.float32(255)
        floats[7, 1, 2] = np.nan if case == "nan" else np.inf
        arrays["train_images"] = floats
        fragments += ["NaN or infinite", "image 7"]
    elif case == "range":
        floats = images / np.float32(255)
        floats[3, 0, 0] = -0.5
        arrays["train_images"] = floats
        fragments += ["span [-0.5, ", "image 3", "[0, 1]"]
    elif case == "empty":
        arrays["train_images"] = images[:0]
        arrays["train_labels"] = labels[:0]
        fragments += ["no images"]
    elif case == "objects":
        with open(root / "images.npy", "wb") as f:  # an object array's header; its bytes are never read
            np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (2,)})
            f.write(b"not an array of numbers")
        return root, [str(root / "images.npy"), "allow_pickle=False"]
    elif case == "unknown_name":
        arrays["tset_images"] = images
        fragments = [str(path), "unrecognised arrays tset_images", "test_images"]
    elif case == "labels_without_images":
        arrays["test_labels"] = labels
        fragments = [str(path), "test_labels", "no test_images"]
    elif case == "both_layouts":
        arrays["images"] = images
        fragments = [str(path), "both split arrays", "images"]
    elif case == "split_shapes":
        arrays["test_images"] = np.zeros((5, 6, 6), np.uint8)
        fragments = [str(path), "differ in shape", "train (4, 4, 1)", "test (6, 6, 1)", "--config.data.image_size"]
    elif case == "corrupt":
        path.write_bytes(b"PK\x03\x04 not really a zip file")
        return path, [str(path), "not a readable .npz"]
    elif case == "missing":
        return root / "nothing.npz", [str(root / "nothing.npz"), "does not exist"]
    else:
        raise AssertionError(case)
    np.savez(path, **arrays)
    return path, fragments


@pytest.mark.parametrize(
    "case",
    [
        "dtype",
        "rank",
        "channels",
        "label_count",
        "label_dtype",
        "negative_label",
        "nan",
        "inf",
        "range",
        "empty",
        "objects",
        "unknown_name",
        "labels_without_images",
        "both_layouts",
        "split_shapes",
        "corrupt",
        "missing",
    ],
)
def test_bad_arrays_name_the_array_and_the_fix(tmp_path, case):
    path, fragments = _arrays_case(tmp_path, case)
    with pytest.raises(DataError) as e:
        load_dataset("arrays", data_dir=str(path))
    for fragment in fragments:
        assert fragment in str(e.value), str(e.value)


# ----------------------------------------------------------------------------- tensorflow-datasets


def prepare_mock_tfds(base, name, version, splits) -> str:
    """A prepared-looking TFDS directory ``base/tensorflow_datasets/name/version`` whose
    ``dataset_info.json`` lists ``splits`` (so mock_data's split names are the real ones)."""
    folder = os.path.join(base, "tensorflow_datasets", name, version)
    os.makedirs(folder, exist_ok=True)
    info = {"name": name, "version": version, "splits": [{"name": s, "shardLengths": [str(n)]} for s, n in splits]}
    with open(os.path.join(folder, "dataset_info.json"), "w") as f:
        json.dump(info, f)
    return os.path.join(base, "tensorflow_datasets")


def mock_tfds(num_examples, tfds_dir=None):
    tfds = pytest.importorskip("tensorflow_datasets")
    if tfds_dir is None:
        return tfds.testing.mock_data(num_examples=num_examples)
    return tfds.testing.mock_data(
        num_examples=num_examples, data_dir=tfds_dir, policy=tfds.testing.MockPolicy.USE_FILES
    )


def test_tfds_colour_dataset_with_mock_data(tmp_path):
    tfds_dir = prepare_mock_tfds(str(tmp_path / "p"), "cifar10", "3.0.2", [("train", 24), ("test", 24)])
    with mock_tfds(24, tfds_dir):
        splits = load_dataset("tfds:cifar10", data_dir=str(tmp_path / "p"), valid_fraction=0.25)
        small = load_dataset("tfds:cifar10", data_dir=str(tmp_path / "p"), crop=24, image_size=16, channels=1)
    assert [(k, s.images.shape) for k, s in splits.items()] == [
        ("train", (18, 32, 32, 3)),
        ("valid", (6, 32, 32, 3)),  # cifar10 has no validation split: held out from train
        ("test", (24, 32, 32, 3)),
    ]
    for s in splits.values():
        assert s.images.dtype == np.float32 and 0 <= s.images.min() and s.images.max() <= 1
        assert s.labels.dtype == np.int32 and 0 <= s.labels.min() and s.labels.max() <= 9
    assert s.images.max() > 0.9  # grey levels 0..255 were scaled, not clipped
    expected = image_ops.transform(splits["test"].images, ImageOptions(24, 16, 1), "x")
    np.testing.assert_array_equal(small["test"].images, expected)  # the same steps as every route
    # Not prepared and no download: tensorflow-datasets is not called, the message says what to do.
    with pytest.raises(DataError) as e:
        load_dataset("tfds:cifar10", data_dir=str(tmp_path / "empty"))
    message = str(e.value)
    assert "'tfds:cifar10' not found" in message
    assert os.path.join(str(tmp_path / "empty"), "tensorflow_datasets", "cifar10") in message
    assert "--config.data.download=True" in message and "pip install -e .[tfds]" in message
    with mock_tfds(5):  # download=True: mocked, into DIR/tensorflow_datasets; no 'label' feature in celeb_a
        faces = load_dataset("tfds:celeb_a", data_dir=str(tmp_path / "d"), download=True, crop=140, image_size=32)
    assert faces["train"].images.shape == (5, 32, 32, 3) and faces["train"].labels is None
    with pytest.raises(DataError, match="not a tensorflow-datasets dataset"):
        load_dataset("tfds:no_such_dataset_here", data_dir=str(tmp_path / "d"), download=True)


# ----------------------------------------------------------------------------- configs


def test_config_checks_the_data_section(tmp_path):
    def invalid(**values):
        config = config_lib.default_config()
        config.data.update(values)
        with pytest.raises(ConfigError) as e:
            validation.validate_config(config_lib.resolve(config))
        return str(e.value)

    assert "tfds:<name>" in invalid(name="cifar10") and "folder" in invalid(name="cifar10")
    assert "--config.data.data_dir=PATH" in invalid(name="folder")
    assert "--config.data.channels=2" in invalid(channels=2)
    assert "--config.data.crop=-1" in invalid(crop=-1)
    assert "--config.data.test_fraction=1.0" in invalid(test_fraction=1.0)
    assert "sum below 1" in invalid(valid_fraction=0.5, test_fraction=0.5)
    for name in ("tfds:cifar10", "fashion_mnist"):
        config = config_lib.default_config()
        config.data.name = name
        validation.validate_config(config_lib.resolve(config))


def test_config_image_shape_without_loading(fashion, tmp_path):
    config = config_lib.default_config()
    config.data.name, config.data.data_dir = "folder", fashion["folder"]
    assert datasets.config_image_shape(config.data) == (28, 28, 1)
    config.data.name, config.data.data_dir, config.data.image_size = "arrays", fashion["npz"], 14
    assert datasets.config_image_shape(config.data) == (14, 14, 1)
    config.data.name, config.data.data_dir, config.data.crop, config.data.image_size = "mnist", "", 20, 0
    assert datasets.config_image_shape(config.data) == (20, 20, 1)
    config.data.name, config.data.crop, config.data.channels = "tfds:cifar10", 0, 1
    pytest.importorskip("tensorflow_datasets")
    assert datasets.config_image_shape(config.data) == (32, 32, 1)  # from the feature description, nothing read


def run_train(*flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("MPLBACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_cli_on_a_folder_of_pngs(tmp_path):
    rng = np.random.default_rng(5)
    prototypes = rng.integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)
    for split, n in (("train", 64), ("test", 16)):
        for i in range(n):
            save_png(tmp_path / "png" / split / f"c{i % 2}" / f"{i}.png", prototypes[i % 2] // 2 + rng.integers(0, 60))
    workdir = tmp_path / "run"
    flags = [f for f in TINY_CLI_FLAGS if not f.startswith(("--config.data.name", "--config.model.latents"))]
    result = run_train(
        *flags,
        "--config.model.latents=3",  # not 2: no latent-plane figures to draw
        "--config.data.name=folder",
        f"--config.data.data_dir={tmp_path / 'png'}",
        "--config.num_epochs=1",
        "--config.batch_size=16",
        f"--workdir={workdir}",
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    with open(workdir / "final_metrics.json") as f:
        assert np.isfinite(json.load(f)["neg_elbo"])
    with open(workdir / "config.json") as f:
        assert json.load(f)["data"]["name"] == "folder"
    assert (workdir / "reconstructions.png").stat().st_size > 0  # colour figures


def shrink(config):
    """A config's data settings with a tiny model: one epoch of seconds."""
    config.model.conv_features = tuple(4 for _ in config.model.conv_features)
    config.model.resnet_widths = tuple(4 for _ in config.model.resnet_widths)
    config.model.resnet_blocks = 1
    config.model.mixture_components = 2
    config.model.encoder_hidden = config.model.decoder_hidden = (8,)
    config.model.latents = 3  # not 2: no latent-plane figures to draw
    config.num_epochs = 1
    config.batch_size = 8
    config.eval_batch_size = 32
    config.num_figure_examples = 4
    return config


def test_cifar10_config_trains_on_mock_tfds(tmp_path):
    config = importlib.import_module("configs.cifar10_vae").get_config()
    assert config.data.name == "tfds:cifar10" and config.model.architecture == "resnet"
    base = str(tmp_path / "data")
    config.data.data_dir = base
    tfds_dir = prepare_mock_tfds(base, "cifar10", "3.0.2", [("train", 32), ("test", 32)])  # cifar10's splits
    with mock_tfds(32, tfds_dir):
        final = run.train_and_evaluate(shrink(config), str(tmp_path / "run"))
    assert np.isfinite(final["neg_elbo"]) and np.isclose(final["bits_per_dim"], final["neg_elbo"] / (3072 * np.log(2)))
    assert os.path.getsize(tmp_path / "run" / "samples.png") > 0


def test_celeba64_config_trains_on_mock_tfds(tmp_path):
    config = importlib.import_module("configs.celeba64_vae").get_config()
    assert (config.data.name, config.data.crop, config.data.image_size) == ("tfds:celeb_a", 140, 64)
    base = str(tmp_path / "data")
    config.data.data_dir = base
    splits = [("train", 16), ("validation", 16), ("test", 16)]  # celeb_a's splits
    tfds_dir = prepare_mock_tfds(base, "celeb_a", "2.1.0", splits)
    with mock_tfds(16, tfds_dir):
        loaded = run.load_splits(config)
        assert {k: s.images.shape for k, s in loaded.items()} == {
            k: (16, 64, 64, 3) for k in ("train", "valid", "test")
        }
        final = run.train_and_evaluate(shrink(config), str(tmp_path / "run"))
    assert np.isfinite(final["neg_elbo"])
