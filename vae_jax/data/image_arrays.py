"""Arrays of images in ``.npz`` / ``.npy`` files as a dataset (``--config.data.name=arrays``).

    splits = load_arrays("~/data/faces.npz", ImageOptions(image_size=32))
    images, labels = splits["train"]  # float32 [N, 32, 32, C] in [0, 1]; int32 [N] or None

``--config.data.data_dir`` is one of:

* a ``.npz`` file (``np.savez``): its arrays by name;
* a ``.npy`` file: one array, the ``images`` (no labels);
* a folder: its ``<name>.npy`` files, one array each; or, when it has none, its only ``.npz``.

Array names (`IMAGE_NAMES`, `LABEL_NAMES`; Keras's ``x_train``, ``y_train``, ``x_test``,
``y_test`` are accepted too):

* ``train_images`` (required), ``test_images``, ``valid_images`` (or ``validation_images``),
  each with optional labels ``train_labels``, ``test_labels``, ``valid_labels``; a missing test
  or validation split is carved from the training images by `vae_jax.data.datasets`;
* or ``images`` and optional ``labels``: the training images, from which the test (and
  validation) images are carved.

Any other name is a `DataError` (a misspelt ``tset_images`` would otherwise be ignored), as
are: object arrays (files are read with ``np.load(..., allow_pickle=False)``); images that are
not ``(N, H, W)`` or ``(N, H, W, C)`` with C = 1 or 3; a dtype other than uint8 (0..255, scaled
by 1/255) or float (values in [0, 1], kept); NaN or infinite values; float values outside
[0, 1]; labels that are not one integer >= 0 per image; labels without images. Images are then
cropped, resized and converted by `vae_jax.data.image_ops.transform`.
"""

from __future__ import annotations

import glob
import os
import zipfile

import numpy as np

from vae_jax.data.image_ops import ImageOptions, transform, unit_images
from vae_jax.errors import DataError

# Split -> the names its images may have, and the names of its labels.
IMAGE_NAMES = {
    "train": ("train_images", "x_train"),
    "valid": ("valid_images", "validation_images"),
    "test": ("test_images", "x_test"),
}
LABEL_NAMES = {
    "train": ("train_labels", "y_train"),
    "valid": ("valid_labels", "validation_labels"),
    "test": ("test_labels", "y_test"),
}
# Without split names: the training images (and labels), test and validation carved from them.
SINGLE = ("images", "labels")
ALL_NAMES = (*(n for names in (*IMAGE_NAMES.values(), *LABEL_NAMES.values()) for n in names), *SINGLE)


class _Source:
    """The arrays of a file or folder, by name, each read when asked for."""

    def __init__(self, path: str):
        self.path = path
        self.npz = None
        if os.path.isdir(path):
            npy = sorted(glob.glob(os.path.join(glob.escape(path), "*.npy")))
            npz = sorted(glob.glob(os.path.join(glob.escape(path), "*.npz")))
            if npy:
                self.files = {os.path.basename(f).removesuffix(".npy"): f for f in npy}
            elif len(npz) == 1:
                self.path = npz[0]
                self.npz = self._open_npz(npz[0])
            else:
                what = f"{len(npz)} .npz files ({', '.join(os.path.basename(f) for f in npz)})" if npz else "no .npz"
                raise DataError(
                    f"{path}: no .npy files and {what}: --config.data.name=arrays reads train_images.npy, ... "
                    "in a folder, or one .npz or .npy file (docs/data.md)."
                )
        elif os.path.isfile(path) and path.endswith(".npz"):
            self.npz = self._open_npz(path)
        elif os.path.isfile(path) and path.endswith(".npy"):
            self.files = {"images": path}
        else:
            what = "does not exist" if not os.path.exists(path) else "is not a .npz or .npy file"
            raise DataError(
                f"{path} {what}: --config.data.name=arrays reads a .npz file, a .npy file of images or a "
                "folder of .npy files given by --config.data.data_dir (docs/data.md)."
            )
        self.names = list(self.npz.files) if self.npz is not None else list(self.files)

    @staticmethod
    def _open_npz(path: str):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: not a readable .npz file ({type(error).__name__}: {error}).") from None

    def where(self, name: str) -> str:
        return f"{self.path}[{name}]" if self.npz is not None else self.files[name]

    def read(self, name: str) -> np.ndarray:
        where = self.where(name)
        try:
            if self.npz is not None:
                return self.npz[name]
            return np.load(self.files[name], mmap_mode="r", allow_pickle=False)
        except ValueError as error:
            if any(text in str(error) for text in ("allow_pickle", "Object arrays", "Python objects")):
                raise DataError(
                    f"{where}: holds Python objects (an object array), which are not loaded (allow_pickle=False): "
                    "save numeric arrays, e.g. np.savez(path, train_images=uint8_images, train_labels=labels)."
                ) from None
            raise DataError(f"{where}: not a readable array ({type(error).__name__}: {error}).") from None
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{where}: not a readable array ({type(error).__name__}: {error}).") from None

    def shape(self, name: str) -> tuple[int, ...]:
        """The array's shape from its header only (nothing else is read)."""
        if self.npz is None:
            return tuple(np.load(self.files[name], mmap_mode="r", allow_pickle=False).shape)
        with zipfile.ZipFile(self.path) as archive, archive.open(name + ".npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return tuple(read(f)[0])


def _layout(source: _Source) -> dict[str, tuple[str, str | None]]:
    """{split: (images name, labels name or None)} of the arrays in ``source``."""
    names = set(source.names)
    unknown = sorted(names - set(ALL_NAMES))
    expected = "train_images, train_labels, test_images, test_labels, valid_images, valid_labels, or images, labels"
    if unknown:
        raise DataError(
            f"{source.path}: unrecognised arrays {', '.join(unknown)}; expected names: {expected} (docs/data.md)."
        )
    split_names = names - set(SINGLE)
    if split_names and names & set(SINGLE):
        raise DataError(
            f"{source.path}: has both split arrays ({', '.join(sorted(split_names))}) and "
            f"{', '.join(sorted(names & set(SINGLE)))}: use one layout."
        )
    if not split_names:
        if "images" not in names:
            raise DataError(f"{source.path}: labels but no images array; expected names: {expected}.")
        return {"train": ("images", "labels" if "labels" in names else None)}
    layout = {}
    for split in ("train", "valid", "test"):
        image_names = [n for n in IMAGE_NAMES[split] if n in names]
        label_names = [n for n in LABEL_NAMES[split] if n in names]
        for found in (image_names, label_names):
            if len(found) > 1:
                raise DataError(f"{source.path}: has both {' and '.join(found)} (the same array): keep one.")
        if label_names and not image_names:
            raise DataError(f"{source.path}: has {label_names[0]} but no {IMAGE_NAMES[split][0]} (its images).")
        if image_names:
            layout[split] = (image_names[0], label_names[0] if label_names else None)
    if "train" not in layout:
        raise DataError(
            f"{source.path}: no train_images (arrays: {', '.join(sorted(names))}); expected names: {expected}."
        )
    return layout


def _labels(labels: np.ndarray, num_images: int, where: str, images_where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels have dtype {labels.dtype}; expected integers (class indices 0..K-1).")
    if labels.ndim != 1 or labels.shape[0] != num_images:
        raise DataError(
            f"{where}: {labels.shape[0] if labels.ndim else 0} labels (shape {labels.shape}) for {num_images} "
            f"images in {images_where}: one label per image, shape ({num_images},)."
        )
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.int32).max):
        raise DataError(f"{where}: labels span [{labels.min()}, {labels.max()}]; expected class indices >= 0.")
    return labels.astype(np.int32)


def load_arrays(path: str, options: ImageOptions) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{split: (float32 images [N, H, W, C] in [0, 1], int32 labels [N] or None)} of the arrays
    at ``path`` (module docstring), with ``options`` applied to every image."""
    source = _Source(path)
    out = {}
    for split, (images_name, labels_name) in _layout(source).items():
        where = source.where(images_name)
        images = unit_images(source.read(images_name), where)
        labels = None
        if labels_name is not None:
            labels = _labels(source.read(labels_name), images.shape[0], source.where(labels_name), where)
        out[split] = (transform(images, options, where), labels)
    shapes = {split: images.shape[1:] for split, (images, _) in out.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(
            f"{source.path}: the splits' images differ in shape ("
            + ", ".join(f"{split} {shape}" for split, shape in shapes.items())
            + "): make them one with --config.data.crop, --config.data.image_size or --config.data.channels."
        )
    return out


def stored_shape(path: str) -> tuple[int, int, int]:
    """(H, W, C) of the training images at ``path`` as stored, read from the array header only."""
    source = _Source(path)
    shape = source.shape(_layout(source)["train"][0])
    return (*shape[1:3], shape[3] if len(shape) == 4 else 1)
