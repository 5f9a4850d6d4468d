"""Any tensorflow-datasets image dataset as a dataset (``--config.data.name=tfds:<name>``).

    splits = load_tfds_images("celeb_a", tfds_dir="~/tensorflow_datasets", download=False,
                              options=ImageOptions(crop=140, image_size=64))
    images, labels = splits["train"]  # float32 [N, 64, 64, 3] in [0, 1]; labels None (celeb_a)

``<name>`` is what ``tfds.builder`` takes (``cifar10``, ``celeb_a``, ``svhn_cropped``,
``omniglot``, ``mnist_corrupted/shot_noise``, ``cifar10:3.0.2``, ...). `vae_jax.data.datasets` finds the
prepared copy (or allows the download) and calls `load_tfds_images`. The images are the feature
``image`` (uint8, 1, 3 or 4 channels; an alpha channel is ignored); the labels are the feature
``label`` when the dataset has a scalar one (else None). Splits: ``train`` -> ``train``,
``validation`` -> ``valid``, ``test`` -> ``test``; others (``extra``, ...) are not loaded. The
split names are the prepared copy's (``dataset_info.json``); a copy that lists none (such as
``tfds.testing.mock_data`` without metadata) is read as ``train`` and ``test``. Examples are read
in the stored order (``shuffle_files=False``) in batches, each cropped, resized and converted by
`vae_jax.data.image_ops.transform` before the next one is read, so that only the final images are held.
"""

from __future__ import annotations

import os

import numpy as np

from vae_jax.data.image_ops import ImageOptions, transform
from vae_jax.errors import DataError

# tensorflow-datasets split -> our split.
SPLITS = (("train", "train"), ("validation", "valid"), ("test", "test"))
BATCH = 1024
PIP_TFDS = "pip install -e .[tfds]"


def import_tfds():
    """tensorflow_datasets, or `DataError` saying how to install it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow_datasets as tfds  # lazy: heavy, optional
    except ImportError as error:
        raise DataError(f"tensorflow-datasets is not installed ({error}): {PIP_TFDS}.") from None
    return tfds


def builder(name: str, tfds_dir: str):
    """The dataset builder of ``name`` in ``tfds_dir``; `DataError` for an unknown name or a
    dataset without an ``image`` feature."""
    tfds = import_tfds()
    try:
        found = tfds.builder(name, data_dir=tfds_dir)
    except Exception as error:  # noqa: BLE001 - tfds raises many types (DatasetNotFoundError, ...)
        raise DataError(
            f"--config.data.name=tfds:{name}: not a tensorflow-datasets dataset ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); the names are listed at "
            "https://www.tensorflow.org/datasets/catalog/overview."
        ) from None
    features = found.info.features
    if "image" not in features:
        raise DataError(
            f"--config.data.name=tfds:{name}: the dataset has no 'image' feature (features: "
            f"{', '.join(features.keys())}); only image datasets can be loaded."
        )
    return found


def _accumulate(batches, total: int, where: str) -> np.ndarray:
    """Joins ``batches`` into one array, written into one preallocated for ``total`` rows while
    they fit (tfds.testing.mock_data yields other numbers of examples than it announces)."""
    out, parts, count, shape = None, [], 0, None
    for batch in batches:
        if shape is None:
            shape = batch.shape[1:]
        elif batch.shape[1:] != shape:
            raise DataError(
                f"{where}: image {count} has shape {batch.shape[1:]} but the images before it {shape}: make "
                "them one size with --config.data.crop=SIDE and/or --config.data.image_size=SIDE (and one kind "
                "with --config.data.channels=1 or 3)."
            )
        if count + len(batch) <= total:
            if out is None:
                out = np.empty((total, *shape), batch.dtype)
            out[count : count + len(batch)] = batch
        else:
            if out is not None:
                parts.append(out[:count])
                out = None
            total = -1
            parts.append(batch)
        count += len(batch)
    if out is not None:
        return out if count == len(out) else out[:count].copy()
    if not parts:
        raise DataError(f"{where}: contains no images.")
    return np.concatenate(parts)


def _split_arrays(ds, tfds, total: int, options: ImageOptions, where: str, has_labels: bool, fixed: bool):
    labels = []

    def images():
        for example in tfds.as_numpy(ds.batch(BATCH) if fixed else ds):
            image = np.asarray(example["image"])
            if not fixed:
                image = image[None]
            if image.ndim == 3:
                image = image[..., None]
            if image.dtype != np.uint8:
                raise DataError(f"{where}: images have dtype {image.dtype}; only uint8 images are read.")
            if image.shape[-1] == 4:
                image = image[..., :3]
            if has_labels:
                labels.append(np.asarray(example["label"]).reshape(-1))
            yield transform(image, options, where)

    stacked = _accumulate(images(), total, where)
    return stacked, (np.concatenate(labels).astype(np.int32) if has_labels else None)


def load_tfds_images(
    name: str, *, tfds_dir: str, download: bool, options: ImageOptions
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{split: (float32 images [N, H, W, C] in [0, 1], int32 labels [N] or None)} of the
    tensorflow-datasets dataset ``name`` in ``tfds_dir`` (module docstring); ``download``:
    download and prepare it first (needs network)."""
    tfds = import_tfds()
    found = builder(name, tfds_dir)
    where = f"tensorflow-datasets {name!r} in {tfds_dir}"
    try:
        if download:
            found.download_and_prepare()
        info = found.info
        available = list(info.splits) or ["train", "test"]
        if "train" not in available:
            raise DataError(f"{where}: no train split (splits: {', '.join(available)}).")
        label = info.features["label"] if "label" in info.features else None
        has_labels = label is not None and tuple(label.shape) == () and np.issubdtype(label.np_dtype, np.integer)
        shape = info.features["image"].shape
        fixed = all(d is not None for d in shape)
        out = {}
        for tfds_split, split in SPLITS:
            if tfds_split not in available:
                continue
            ds = found.as_dataset(split=tfds_split, shuffle_files=False)
            keys = ("image", "label") if has_labels else ("image",)
            ds = ds.map(lambda example, keys=keys: {k: example[k] for k in keys})
            total = info.splits[tfds_split].num_examples if tfds_split in info.splits else 0
            out[split] = _split_arrays(ds, tfds, total, options, f"{where} [split {tfds_split}]", has_labels, fixed)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - tfds and tf.data raise many types; re-raised with context
        raise DataError(f"{where}: failed to read ({type(error).__name__}: {error}).") from None
    return out


def stored_shape(name: str, tfds_dir: str) -> tuple[int, int, int]:
    """(H, W, C) of the images of ``name`` as stored (from the dataset's feature description)."""
    shape = tuple(builder(name, tfds_dir).info.features["image"].shape)
    if len(shape) != 3 or None in shape:
        raise DataError(
            f"tensorflow-datasets {name!r} has images of shape {shape} (sizes vary): give their size with "
            "--config.data.image_size=SIDE and --config.data.channels=1 or 3."
        )
    return (shape[0], shape[1], min(shape[2], 3))
