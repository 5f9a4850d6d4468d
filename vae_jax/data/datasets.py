"""Datasets by name, as numpy arrays (no jax here).

    splits = load_dataset("fashion_mnist", data_dir="~/data", binarize="static", seed=0)
    x = splits["train"].images          # float32 (60000, 28, 28, 1) in [0, 1]
    y = splits["train"].labels          # int32 (60000,), or None (binarized_mnist)

    splits = load_dataset("tfds:celeb_a", crop=140, image_size=64)   # float32 (162770, 64, 64, 3)
    splits = load_dataset("folder", data_dir="~/faces", test_fraction=0.1, split_seed=0)

Datasets by name (`DATASETS`) are below. Besides them, any images (docs/data.md):

* ``folder``: the PNG/JPEG files of the folder ``data_dir`` (`vae_jax.data.image_folder`);
* ``arrays``: ``.npz`` / ``.npy`` arrays at ``data_dir`` (`vae_jax.data.image_arrays`);
* ``tfds:<name>``: any tensorflow-datasets image dataset, e.g. ``tfds:cifar10``, from a prepared
  copy (the TFDS directories of step 4 below) or, with ``download=True``, downloaded into the
  first of them (`vae_jax.data.tfds_images`).

Every route's images then go through the same `vae_jax.data.image_ops.transform`: ``crop`` (side of
a centre square crop), ``image_size`` (resize to a square of this side) and ``channels`` (1:
grey, 3: RGB), each 0 to leave the images as stored. A source without a test split (a folder
without ``test/``, ...) gets one of ``test_fraction`` of its training images; one without a
validation split gets one of ``valid_fraction`` of them (0: none). Which images are held out
is fixed by ``split_seed`` alone (`held_out`), and the test images do not depend on
``valid_fraction``. The named datasets all have test splits; ``valid_fraction`` > 0 carves a
validation split from MNIST's or Fashion-MNIST's training images too.

Named datasets (`DATASETS`):

* ``mnist``, ``fashion_mnist``: the four standard IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each raw or gzipped ``.gz``); splits ``train`` (60000) and
  ``test`` (10000). Grey levels are scaled to [0, 1] (``/255``).
* ``binarized_mnist``: Larochelle's fixed binarisation, files
  ``binarized_mnist_{train,valid,test}.amat`` (raw or ``.gz``), one image per line as 784
  space-separated 0/1 values; splits ``train`` (50000), ``valid`` (10000), ``test`` (10000);
  no labels (``labels is None``).
* ``digits``: scikit-learn's bundled ``load_digits()`` (1797 8x8 images, grey levels 0..16
  scaled by ``/16``). Deterministic split, independent of ``seed``: the first 1500 images
  are ``train``, the last 297 are ``test`` (the images are roughly ordered by writer, so this
  is close to a writer-disjoint split).

Where local files are looked for, in this order (the first directory that holds *all* the
files of the dataset wins; within a directory the uncompressed file is preferred over ``.gz``):

1. ``data_dir`` and ``data_dir/<name>`` (also ``data_dir/fashion-mnist``,
   ``data_dir/FashionMNIST/raw`` and ``data_dir/MNIST/raw``, the Debian and torchvision
   layouts) when ``data_dir`` is given;
2. otherwise the same under ``$VAE_JAX_DATA_DIR`` when that variable is set;
3. for ``fashion_mnist`` also ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package
   ``dataset-fashion-mnist``);
4. an already *prepared* tensorflow-datasets copy in the TFDS directory: ``<base>/tensorflow_datasets``
   where ``<base>`` is ``data_dir`` or ``$VAE_JAX_DATA_DIR``, then ``$TFDS_DATA_DIR`` or
   ``~/tensorflow_datasets``. tensorflow-datasets is only called when
   ``<tfds dir>/<name>/<version>/dataset_info.json`` exists (an unprepared dataset without
   network makes TFDS retry for minutes);
5. with ``download=True`` only: ``tfds.load(..., download=True)`` into the first TFDS
   directory above (needs ``pip install -e .[tfds]`` and network).

If nothing is found a `DataError` is raised at once, listing every place tried and the ways
to get the data. Every user-facing problem (unknown name, corrupt or truncated files, bad
values) is a `DataError` (a `ValueError`) whose message names the file or place.

``binarize`` (`BINARIZE_MODES`), applied last (after the options and the held-out splits):
``"none"`` returns the grey levels; ``"static"`` is a static binarisation, like the classic
statically binarised MNIST: one Bernoulli draw of the grey levels
per pixel when the data are loaded, with ``np.random.default_rng`` seeded from ``seed`` (one
independent stream per split), the same fixed draw for the same seed. A *dynamic* binarisation
(a fresh draw of every training batch) is not the loader's: the trainer does it in the training
step (``--config.data.binarize=dynamic``) from data loaded with ``binarize="none"``, and
``binarize="dynamic"`` here is a `DataError` that says so. ``binarized_mnist`` is already
binary and is returned unchanged.

Parsed files are cached in memory (keyed by path, size and modification time), so loading
the same dataset twice in one process does not decompress the files again.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import gzip
import os
import zlib

import numpy as np

from vae_jax.data import image_arrays, image_folder, tfds_images
from vae_jax.data.image_ops import ImageOptions, transform
from vae_jax.errors import DataError

__all__ = [
    "BINARIZE_MODES",
    "DATASETS",
    "SOURCES",
    "DataError",
    "Split",
    "binarize_static",
    "check_name",
    "config_image_shape",
    "held_out",
    "image_shape",
    "load_dataset",
    "load_kwargs",
]

DATASETS = ("mnist", "fashion_mnist", "binarized_mnist", "digits")
# Sources of any images: a folder of image files, .npz/.npy arrays, and "tfds:<name>".
SOURCES = ("folder", "arrays")
TFDS_PREFIX = "tfds:"
# What `load_dataset(binarize=...)` accepts. "dynamic" is a config value only (a fresh draw in
# the training step), refused here with a message that says so.
BINARIZE_MODES = ("none", "static")
ENV_VAR = "VAE_JAX_DATA_DIR"

# Directories installed by OS packages (Debian/Ubuntu `dataset-fashion-mnist`).
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
}
# Extra sub-folders of a data directory that are searched besides `<name>`.
_SUBDIR_ALIASES: dict[str, tuple[str, ...]] = {
    "mnist": ("MNIST/raw",),
    "fashion_mnist": ("fashion-mnist", "FashionMNIST/raw"),
    "binarized_mnist": (),
}
_TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "binarized_mnist": "binarized_mnist"}
# TFDS split name -> our split name.
_TFDS_SPLITS = {
    "mnist": (("train", "train"), ("test", "test")),
    "fashion_mnist": (("train", "train"), ("test", "test")),
    "binarized_mnist": (("train", "train"), ("validation", "valid"), ("test", "test")),
}
# Split name -> (images file, labels file).
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_AMAT_SPLITS = ("train", "valid", "test")
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801
_AMAT_VALUES = 784
_DIGITS_NUM_TRAIN = 1500
_PIP_TFDS = "pip install -e .[tfds]"


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset.

    Attributes:
      images: float32 array (N, H, W, C) with values in [0, 1]; C = 1 (grey) or 3 (RGB).
      labels: int32 array (N,) of class indices >= 0, or None where the dataset has no labels.
    """

    images: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def image_shape(name: str) -> tuple[int, int, int]:
    """(H, W, C) of the images of dataset `name` as stored: (28, 28, 1), or (8, 8, 1) for digits.
    Only for `DATASETS`; `config_image_shape` gives any source's, after the crop and resize."""
    if name not in DATASETS:
        raise DataError(
            f"image_shape({name!r}): only the named datasets ({', '.join(DATASETS)}) have a fixed shape; "
            "config_image_shape(config.data) gives any source's."
        )
    return (8, 8, 1) if name == "digits" else (28, 28, 1)


def load_kwargs(data_config) -> dict:
    """`load_dataset`'s keyword arguments (but ``binarize`` and ``seed``) from ``config.data``."""
    return dict(
        data_dir=data_config.data_dir or None,
        download=data_config.download,
        crop=data_config.crop,
        image_size=data_config.image_size,
        channels=data_config.channels,
        valid_fraction=data_config.valid_fraction,
        test_fraction=data_config.test_fraction,
        split_seed=data_config.split_seed,
    )


def config_image_shape(data_config) -> tuple[int, int, int]:
    """(H, W, C) of the images ``config.data`` loads, after its crop, resize and channels, without
    loading them: from the name, or the options, or else the first image's (folder), the array
    header (arrays) or the feature description (tfds) of the stored data."""
    check_name(data_config.name)
    options = ImageOptions(data_config.crop, data_config.image_size, data_config.channels)
    name, data_dir = data_config.name, data_config.data_dir or None
    if name in DATASETS:
        stored = image_shape(name)
    elif options.image_size and options.channels:
        return (options.image_size, options.image_size, options.channels)
    elif name == "folder":
        stored = image_folder.first_image_shape(_required_dir(name, data_dir))
    elif name == "arrays":
        stored = image_arrays.stored_shape(_required_dir(name, data_dir))
    else:
        tfds_name = name[len(TFDS_PREFIX) :]
        tfds_dir, _ = _prepared_tfds_dir(tfds_name, data_dir)
        if tfds_dir is None:
            tfds_dir = _tfds_dirs(data_dir)[0]
        stored = tfds_images.stored_shape(tfds_name, tfds_dir)
    return options.output_shape(*stored)


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    binarize: str = "none",
    download: bool = False,
    seed: int = 0,
    crop: int = 0,
    image_size: int = 0,
    channels: int = 0,
    valid_fraction: float = 0.0,
    test_fraction: float = 0.1,
    split_seed: int = 0,
) -> dict[str, Split]:
    """Loads dataset `name` as {'train', ['valid',] 'test'} -> `Split` (see module docstring).

    Args:
      name: one of `DATASETS`, one of `SOURCES` (``folder``, ``arrays``) or ``tfds:<name>``.
      data_dir: directory holding the files (also searched: `data_dir/<name>`); when None,
        `$VAE_JAX_DATA_DIR` is used instead if set. For ``folder`` and ``arrays``: the folder
        or file of the images (required).
      binarize: "none" (grey levels in [0, 1]) or "static" (one fixed Bernoulli draw of
        the grey levels, seeded by `seed`); see `BINARIZE_MODES`.
      download: allow tensorflow-datasets to download the data when no local copy exists.
      seed: seed of the static binarisation (does not affect the splits).
      crop: side of a centre square crop of every image (0: none).
      image_size: side of the square every image is resized to (0: keep the size).
      channels: 1 (grey), 3 (RGB) or 0 (as stored).
      valid_fraction: where the data have no validation split, this fraction of the training
        images becomes one (0: no validation split).
      test_fraction: where the data have no test split, this fraction of the training images
        becomes one.
      split_seed: seed of the images held out by the two fractions (`held_out`).

    Raises:
      DataError: unknown name or binarize mode, data not found, or invalid files/values.
    """
    check_name(name)
    if binarize == "dynamic":
        raise DataError(
            'binarize="dynamic" is not a load-time mode: dynamic binarisation (a fresh Bernoulli draw '
            "of every training batch) happens in the training step; set config.data.binarize=dynamic "
            '(--config.data.binarize=dynamic) and load the grey levels with binarize="none". '
            'load_dataset(..., binarize="static") gives one fixed, seeded draw when the data are loaded.'
        )
    if binarize not in BINARIZE_MODES:
        raise DataError(
            f"binarize={binarize!r} is not supported; allowed values: " + ", ".join(repr(m) for m in BINARIZE_MODES)
        )
    options = ImageOptions(crop, image_size, channels)
    if name == "digits":
        splits = _load_digits()
    elif name in DATASETS:
        splits = _load_files_or_tfds(name, data_dir=data_dir, download=download)
    else:
        splits = _load_source(name, data_dir=data_dir, download=download, options=options)
    if name in DATASETS and not options.identity:
        splits = {k: Split(transform(s.images, options, f"{name} [{k}]"), s.labels) for k, s in splits.items()}
    splits = _hold_out(splits, name, valid_fraction=valid_fraction, test_fraction=test_fraction, split_seed=split_seed)
    if binarize == "static" and name != "binarized_mnist":
        splits = _binarize_static(splits, seed)
    return splits


def held_out(num_images: int, *, valid: int, test: int, split_seed: int) -> tuple[np.ndarray, ...]:
    """Sorted indices (train, valid, test) of ``num_images`` training images of which ``valid``
    and ``test`` are held out: one permutation drawn from ``split_seed`` (numpy's PCG64), its first
    ``test`` entries the test images, the next ``valid`` the validation images; so the test images
    do not depend on ``valid``."""
    order = np.random.default_rng(split_seed).permutation(num_images)
    parts = order[test + valid :], order[test : test + valid], order[:test]
    return tuple(np.sort(p) for p in parts)


def _hold_out(
    splits: dict[str, Split], name: str, *, valid_fraction: float, test_fraction: float, split_seed: int
) -> dict[str, Split]:
    """``splits`` with a test split (and a validation split when ``valid_fraction`` > 0) taken
    from the training images where the data have none."""
    for key, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{key}={value!r}: expected a fraction in [0, 1).")
    take_test = "test" not in splits
    take_valid = "valid" not in splits and valid_fraction > 0
    if not (take_test or take_valid):
        return splits
    train = splits["train"]
    n = len(train)
    if take_test and test_fraction == 0:
        raise DataError(
            f"{name} has no test split: hold out some training images with --config.data.test_fraction=0.1 "
            "(load_dataset(..., test_fraction=0.1)), or give the test images (docs/data.md)."
        )
    num_test = max(1, round(test_fraction * n)) if take_test else 0
    num_valid = max(1, round(valid_fraction * n)) if take_valid else 0
    if num_test + num_valid >= n:
        raise DataError(
            f"{name}: {n} training images are too few to hold out {num_test} test and {num_valid} validation "
            "images; give more images or smaller --config.data.test_fraction / --config.data.valid_fraction."
        )
    parts = held_out(n, valid=num_valid, test=num_test, split_seed=split_seed)
    taken = {"train": parts[0], "valid": parts[1], "test": parts[2]}

    def subset(key: str) -> Split:
        index = taken[key]
        return Split(train.images[index], None if train.labels is None else train.labels[index])

    out = {"train": subset("train")}
    for key in ("valid", "test"):
        if key in splits:
            out[key] = splits[key]
        elif len(taken[key]):
            out[key] = subset(key)
    return out


# ----------------------------------------------------------------------------- helpers


def check_name(name: str) -> None:
    """`DataError` unless ``name`` is one of `DATASETS`, `SOURCES` or ``tfds:<name>``."""
    if name in DATASETS or name in SOURCES:
        return
    if isinstance(name, str) and name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
        return
    raise DataError(
        f"Unknown dataset {name!r}; available datasets: "
        + ", ".join(DATASETS + SOURCES)
        + f", or {TFDS_PREFIX}<name> for a tensorflow-datasets image dataset (e.g. {TFDS_PREFIX}cifar10)."
    )


def _expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(os.path.expandvars(str(path))))


def binarize_static(splits: dict[str, Split], seed: int) -> dict[str, Split]:
    """One seeded Bernoulli draw of the grey levels of each split (``binarize="static"``); a
    split's draw depends on its name and ``seed`` only, not on the other splits passed."""
    return _binarize_static(splits, seed)


def _binarize_static(splits: dict[str, Split], seed: int) -> dict[str, Split]:
    # One independent stream per split, keyed by a fixed split order, so that a split's
    # draw does not depend on which other splits exist.
    order = ("train", "valid", "test")
    children = np.random.SeedSequence(seed).spawn(len(order))
    out = {}
    for key, split in splits.items():
        rng = np.random.default_rng(children[order.index(key)])
        u = rng.random(split.images.shape, dtype=np.float32)
        out[key] = Split(images=(u < split.images).astype(np.float32), labels=split.labels)
    return out


def _validate(images: np.ndarray, labels, *, name: str, where: str) -> Split:
    """Checks shapes, dtypes and value ranges; returns the Split (float32 / int32)."""
    images = np.asarray(images)
    expected = image_shape(name)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise DataError(
            f"{where}: images have shape {images.shape}, expected (N, {expected[0]}, "
            f"{expected[1]}, {expected[2]}) for {name!r}."
        )
    if images.shape[0] == 0:
        raise DataError(f"{where}: contains no images.")
    images = images.astype(np.float32, copy=False)
    if np.isnan(images).any():
        raise DataError(f"{where}: images contain NaN values; the data is corrupt.")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"{where}: image values span [{lo:g}, {hi:g}], expected values in [0, 1]; "
            "the data is corrupt or in an unexpected format."
        )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],):
            raise DataError(
                f"{where}: {labels.shape[0] if labels.ndim else 0} labels for "
                f"{images.shape[0]} images (labels shape {labels.shape})."
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataError(f"{where}: labels span [{labels.min()}, {labels.max()}], expected 0..9.")
        labels = labels.astype(np.int32)
    return Split(images=images, labels=labels)


def _to_unit(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 grey levels -> float32 in [0, 1] (255 maps to exactly 1.0)."""
    out = images_uint8.astype(np.float32)
    out /= np.float32(255.0)
    return out


# ----------------------------------------------------------------------------- digits


def _load_digits() -> dict[str, Split]:
    from sklearn.datasets import load_digits  # lazy: sklearn import is slowish

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / np.float32(16.0))[..., None]
    labels = bunch.target
    where = "sklearn.datasets.load_digits()"
    n = _DIGITS_NUM_TRAIN
    return {
        "train": _validate(images[:n], labels[:n], name="digits", where=where + "[train]"),
        "test": _validate(images[n:], labels[n:], name="digits", where=where + "[test]"),
    }


# ----------------------------------------------------------------------------- raw files


def _read_bytes(path: str) -> bytes:
    """Reads a file, gunzipping it if it is named *.gz or starts with the gzip magic."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e}).") from e
    if path.endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: not a valid gzip file or truncated ({type(e).__name__}: {e}); "
                "delete it and download it again."
            ) from e
    return data


def _file_key(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _parse_idx_cached(key: tuple[str, int, int], path: str, magic: int) -> np.ndarray:
    del key  # only part of the cache key
    return _parse_idx(_read_bytes(path), path, magic)


def _read_idx(path: str, magic: int) -> np.ndarray:
    return _parse_idx_cached(_file_key(path), path, magic)


def _parse_idx(data: bytes, path: str, expected_magic: int) -> np.ndarray:
    """Parses an IDX file (big-endian magic, then one uint32 per dim, then uint8 data)."""
    kind = "images" if expected_magic == _IDX_IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, no header).")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for an "
            f"IDX {kind} file; the file is corrupt or not an MNIST-format {kind} file "
            "(images and labels swapped?)."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, need {header}).")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected_len = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_len:
        what = "truncated" if len(data) < expected_len else "has trailing bytes"
        raise DataError(
            f"{path}: {what}: the header declares {kind} of shape {dims} "
            f"({expected_len} bytes with header) but the data is {len(data)} bytes; "
            "delete the file and download it again."
        )
    if expected_magic == _IDX_IMAGES_MAGIC and dims[1:] != (28, 28):
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28.")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    arr.flags.writeable = False
    return arr


@functools.lru_cache(maxsize=4)
def _parse_amat_cached(key: tuple[str, int, int], path: str) -> np.ndarray:
    del key
    return _parse_amat(_read_bytes(path), path)


def _read_amat(path: str) -> np.ndarray:
    return _parse_amat_cached(_file_key(path), path)


def _parse_amat(data: bytes, path: str) -> np.ndarray:
    """Parses a binarized-MNIST .amat file into a read-only uint8 (N, 784) array of 0/1."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    data = data.rstrip(b"\n")
    if not data.strip():
        raise DataError(f"{path}: empty file, contains no images.")
    data += b"\n"
    # Fast path: every line is exactly "d d d ... d\n" (1568 bytes), digits at even offsets.
    width = 2 * _AMAT_VALUES
    if len(data) % width == 0:
        a = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
        if (a[:, 1:-1:2] == ord(" ")).all() and (a[:, -1] == ord("\n")).all():
            digits = a[:, 0::2] - np.uint8(ord("0"))  # wraps below '0', so <= 1 means 0/1
            if (digits <= 1).all():
                digits.flags.writeable = False
                return digits
    # Slow path: other whitespace layouts, and precise error messages.
    rows = []
    for lineno, line in enumerate(data.split(b"\n")[:-1], start=1):
        tokens = line.split()
        if len(tokens) != _AMAT_VALUES:
            raise DataError(
                f"{path}: line {lineno} has {len(tokens)} values, expected {_AMAT_VALUES} "
                "space-separated 0/1 values; the file is corrupt or truncated."
            )
        if all(t == b"0" or t == b"1" for t in tokens):
            rows.append(np.frombuffer(b"".join(tokens), dtype=np.uint8) - np.uint8(ord("0")))
            continue
        try:
            values = np.array([float(t) for t in tokens])
        except ValueError:
            values = None
        if values is None or not np.isin(values, (0.0, 1.0)).all():
            bad = next(t for t in tokens if t not in (b"0", b"1") and (values is None or _not01(t)))
            raise DataError(
                f"{path}: line {lineno} contains the value {bad.decode(errors='replace')!r}; "
                "binarized MNIST values must be 0 or 1."
            )
        rows.append(values.astype(np.uint8))
    out = np.stack(rows)
    out.flags.writeable = False
    return out


def _not01(token: bytes) -> bool:
    try:
        return float(token) not in (0.0, 1.0)
    except ValueError:
        return True


# ----------------------------------------------------------------------------- lookup


def _required_files(name: str) -> list[str]:
    if name == "binarized_mnist":
        return [f"binarized_mnist_{s}.amat" for s in _AMAT_SPLITS]
    return [f for pair in _IDX_FILES.values() for f in pair]


def _find_file(directory: str, base: str) -> str | None:
    candidates = [base, base + ".gz"]
    if "-idx" in base:  # e.g. train-images.idx3-ubyte (renamed by some unpackers)
        dotted = base.replace("-idx", ".idx")
        candidates += [dotted, dotted + ".gz"]
    for c in candidates:
        p = os.path.join(directory, c)
        if os.path.isfile(p):
            return p
    return None


def _search_dirs(name: str, data_dir: str | None) -> tuple[list[str], list[str]]:
    """Returns (directories to search in order, notes about skipped places)."""
    notes = []
    env = os.environ.get(ENV_VAR) or None
    if data_dir is not None:
        base = _expand(data_dir)
        if env:
            notes.append(f"${ENV_VAR}={env} (ignored because data_dir was given)")
    elif env:
        base = _expand(env)
    else:
        base = None
        notes.append(f"${ENV_VAR} (not set) and data_dir (not given)")
    dirs = []
    if base is not None:
        dirs.append(base)
        for sub in (name, *_SUBDIR_ALIASES.get(name, ())):
            dirs.append(os.path.join(base, sub))
    dirs.extend(SYSTEM_DIRS.get(name, ()))
    return dirs, notes


def _tfds_dirs(data_dir: str | None) -> list[str]:
    base = data_dir if data_dir is not None else (os.environ.get(ENV_VAR) or None)
    dirs = []
    if base is not None:
        dirs.append(os.path.join(_expand(base), "tensorflow_datasets"))
    default = os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    default = _expand(default)
    if default not in dirs:
        dirs.append(default)
    return dirs


def _tfds_prepared(tfds_dir: str, tfds_name: str) -> bool:
    root = os.path.join(tfds_dir, tfds_name)
    if not os.path.isdir(root):
        return False
    return bool(
        glob.glob(os.path.join(glob.escape(root), "*", "dataset_info.json"))
        or glob.glob(os.path.join(glob.escape(root), "*", "*", "dataset_info.json"))
    )


def _load_files_or_tfds(name: str, *, data_dir: str | None, download: bool) -> dict[str, Split]:
    files = _required_files(name)
    dirs, notes = _search_dirs(name, data_dir)
    tried = list(notes)
    for d in dirs:
        if not os.path.isdir(d):
            what = "not a directory" if os.path.exists(d) else "does not exist"
            tried.append(f"{d} ({what})")
            continue
        found = {f: _find_file(d, f) for f in files}
        missing = [f for f, p in found.items() if p is None]
        if not missing:
            return _load_local(name, found)
        tried.append(f"{d} (missing: " + ", ".join(m + "[.gz]" for m in missing) + ")")

    tfds_name = _TFDS_NAMES[name]
    tfds_dirs = _tfds_dirs(data_dir)
    for td in tfds_dirs:
        if _tfds_prepared(td, tfds_name):
            return _load_tfds(name, tfds_dir=td, download=False, tried=tried)
        tried.append(f"{os.path.join(td, tfds_name)} (no prepared tensorflow-datasets copy)")
    if download:
        return _load_tfds(name, tfds_dir=tfds_dirs[0], download=True, tried=tried)
    raise DataError(_not_found_message(name, tried, download=download))


def _how_to_get(name: str) -> list[str]:
    files = ", ".join(f + "[.gz]" for f in _required_files(name))
    ways = [
        f"(1) put {files} in a directory DIR (or DIR/{name}) and pass "
        f"--config.data.data_dir=DIR (the lecture experiments: --data_dir=DIR; load_dataset(..., "
        f"data_dir=DIR)), or set {ENV_VAR}=DIR;"
    ]
    if name == "fashion_mnist":
        ways.append(
            "(2) apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs "
            "/usr/share/datasets/fashion-mnist, found automatically);"
        )
    elif name == "mnist":
        ways.append(
            "(2) download the four MNIST IDX .gz files (e.g. from "
            "https://storage.googleapis.com/cvdf-datasets/mnist/) into DIR as in (1) "
            "(apt-get install dataset-fashion-mnist provides fashion_mnist only);"
        )
    else:
        ways.append(
            "(2) download binarized_mnist_{train,valid,test}.amat (Larochelle & Murray, e.g. "
            "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/) into DIR "
            "as in (1);"
        )
    ways.append(
        f"(3) {_PIP_TFDS} and run with --config.data.download=True (download=True), with network "
        "access; tensorflow-datasets then stores it under DIR/tensorflow_datasets "
        "(or $TFDS_DATA_DIR, ~/tensorflow_datasets)."
    )
    return ways


def _not_found_message(name: str, tried: list[str], *, download: bool, extra: str = "") -> str:
    lines = [f"Dataset {name!r} not found. {extra}".rstrip(), "Places tried:"]
    lines += [f"  - {t}" for t in tried]
    if not download:
        lines.append("  - tensorflow-datasets download: not attempted (download=False)")
    lines.append("Ways to get it:")
    lines += [f"  {w}" for w in _how_to_get(name)]
    return "\n".join(lines)


def _load_local(name: str, found: dict[str, str]) -> dict[str, Split]:
    out = {}
    if name == "binarized_mnist":
        for split in _AMAT_SPLITS:
            path = found[f"binarized_mnist_{split}.amat"]
            raw = _read_amat(path)
            images = raw.reshape(-1, 28, 28, 1).astype(np.float32)
            out[split] = _validate(images, None, name=name, where=path)
        return out
    for split, (img_file, lbl_file) in _IDX_FILES.items():
        img_path, lbl_path = found[img_file], found[lbl_file]
        images = _read_idx(img_path, _IDX_IMAGES_MAGIC)
        labels = _read_idx(lbl_path, _IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{img_path} has {images.shape[0]} images but {lbl_path} has "
                f"{labels.shape[0]} labels; one of the files is corrupt or from another "
                "dataset."
            )
        scaled = _to_unit(images)
        out[split] = _validate(scaled[..., None], labels, name=name, where=img_path)
    return out


# ----------------------------------------------------------------------------- tfds


def _load_tfds(name: str, *, tfds_dir: str, download: bool, tried: list[str]) -> dict[str, Split]:
    tfds_name = _TFDS_NAMES[name]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow_datasets as tfds  # lazy: heavy, optional
    except ImportError as e:
        raise DataError(
            _not_found_message(
                name,
                tried,
                download=download,
                extra=f"tensorflow-datasets is not installed ({e}); {_PIP_TFDS}.",
            )
        ) from e
    tfds_splits = _TFDS_SPLITS[name]
    where = f"tensorflow-datasets {tfds_name!r} in {tfds_dir}"
    try:
        # batch_size=-1 is avoided: it batches by info.splits.total_num_examples, which is 0
        # under tfds.testing.mock_data (-> batch of sys.maxsize, which aborts the process).
        datasets = tfds.load(
            tfds_name,
            split=[s for s, _ in tfds_splits],
            data_dir=tfds_dir,
            download=download,
            shuffle_files=False,
        )
        arrays = []
        for ds in datasets:
            parts = list(tfds.as_numpy(ds.batch(10000)))
            if not parts:
                arrays.append(None)
                continue
            arrays.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    except Exception as e:  # noqa: BLE001 - tfds raises many types; re-raised with context
        raise DataError(
            _not_found_message(
                name,
                tried,
                download=download,
                extra=f"{where} failed: {type(e).__name__}: {e}",
            )
        ) from e
    out = {}
    for (tfds_split, split), arr in zip(tfds_splits, arrays):
        split_where = f"{where} [split {tfds_split}]"
        if arr is None:
            raise DataError(f"{split_where}: contains no images.")
        images = np.asarray(arr["image"])
        if name == "binarized_mnist":
            if images.size and not np.isin(images, (0, 1)).all():
                raise DataError(
                    f"{split_where}: binarized MNIST images contain values other than 0/1; "
                    "the prepared copy is corrupt, delete it and prepare it again."
                )
            images = images.astype(np.float32)
        elif images.dtype == np.uint8:
            images = _to_unit(images)
        labels = arr.get("label") if name != "binarized_mnist" else None
        out[split] = _validate(images, labels, name=name, where=split_where)
    return out


# ----------------------------------------------------------------------------- any images


def _required_dir(name: str, data_dir: str | None) -> str:
    if not data_dir:
        what = (
            "the folder of PNG/JPEG files" if name == "folder" else "the .npz or .npy file, or a folder of .npy files"
        )
        raise DataError(
            f"--config.data.name={name} needs --config.data.data_dir=PATH, {what} (load_dataset(..., data_dir=PATH); "
            "docs/data.md)."
        )
    return _expand(data_dir)


def _prepared_tfds_dir(tfds_name: str, data_dir: str | None) -> tuple[str | None, list[str]]:
    """(the first TFDS directory holding a prepared copy of ``tfds_name`` or None, places tried)."""
    folder = tfds_name.split(":")[0].split("/")[0]
    tried = []
    for tfds_dir in _tfds_dirs(data_dir):
        if _tfds_prepared(tfds_dir, folder):
            return tfds_dir, tried
        tried.append(f"{os.path.join(tfds_dir, folder)} (no prepared tensorflow-datasets copy)")
    return None, tried


def _tfds_not_found(tfds_name: str, tried: list[str], data_dir: str | None) -> str:
    first = _tfds_dirs(data_dir)[0]
    lines = [f"Dataset '{TFDS_PREFIX}{tfds_name}' not found.", "Places tried:"]
    lines += [f"  - {t}" for t in tried]
    lines.append("  - tensorflow-datasets download: not attempted (download=False)")
    lines += [
        "Ways to get it:",
        f"  (1) {_PIP_TFDS} and run with --config.data.download=True (download=True), with network access; "
        f"tensorflow-datasets then stores it under {first};",
        f"  (2) prepare it where there is network (tfds.builder({tfds_name!r}).download_and_prepare()) and copy "
        "its folder from that machine's ~/tensorflow_datasets into one of the places above.",
    ]
    return "\n".join(lines)


def _load_source(name: str, *, data_dir: str | None, download: bool, options: ImageOptions) -> dict[str, Split]:
    """The splits of a `SOURCES` name or ``tfds:<name>``, with ``options`` applied."""
    if name == "folder":
        where = _required_dir(name, data_dir)
        raw = image_folder.load_folder(where, options)
    elif name == "arrays":
        where = _required_dir(name, data_dir)
        raw = image_arrays.load_arrays(where, options)
    else:
        tfds_name = name[len(TFDS_PREFIX) :]
        tfds_dir, tried = _prepared_tfds_dir(tfds_name, data_dir)
        prepared = tfds_dir is not None
        if not prepared and not download:
            raise DataError(_tfds_not_found(tfds_name, tried, data_dir))
        tfds_dir = tfds_dir if prepared else _tfds_dirs(data_dir)[0]
        where = f"tensorflow-datasets {tfds_name!r} in {tfds_dir}"
        raw = tfds_images.load_tfds_images(tfds_name, tfds_dir=tfds_dir, download=not prepared, options=options)
    out = {}
    for split, (images, labels) in raw.items():
        if images.ndim != 4 or images.shape[0] == 0 or images.dtype != np.float32:
            raise DataError(f"{where} [{split}]: no images (got an array of shape {images.shape}).")
        if labels is not None and labels.shape != (images.shape[0],):
            raise DataError(f"{where} [{split}]: {labels.shape} labels for {images.shape[0]} images.")
        out[split] = Split(images=images, labels=labels)
    return out
