"""A folder of PNG/JPEG files as a dataset (``--config.data.name=folder``).

    splits = load_folder("~/data/faces", ImageOptions(crop=140, image_size=64))
    images, labels = splits["train"]  # float32 [N, 64, 64, C] in [0, 1]; int32 [N] or None

Layouts (file names ending in ``.png``, ``.jpg`` or ``.jpeg``, any case; other files and names
starting with ``.`` are ignored):

* split folders ``DIR/train/``, ``DIR/test/``, ``DIR/valid/`` (or ``DIR/validation/``): each
  split's images; ``train/`` is required, a missing ``test/`` or ``valid/`` is carved from the
  training images by `vae_jax.data.datasets` (``--config.data.test_fraction``, ``valid_fraction``);
* no split folders: every image under ``DIR`` is a training image (test and validation images
  are carved from them).

Inside ``DIR`` or a split folder, either the images themselves (no labels), or class
sub-folders ``<class>/`` holding the images: the class names of all splits, sorted, are the
labels 0..K-1. A folder that mixes images and class sub-folders, or splits that disagree about
having classes, is a `DataError`.

Decoding: Pillow, in a pool of threads (`vae_jax.data.image_ops.workers`), each image cropped,
resized and converted (`vae_jax.data.image_ops.transform`) right after it is decoded, so only the
final images are held in memory. Stored modes: ``L`` (grey, 1 channel) and ``RGB`` (3
channels) as they are; ``1``, ``LA`` to grey; palette, ``RGBA``, ``CMYK`` and other colour
modes to RGB. An alpha channel is ignored. 16- and 32-bit images are a `DataError`, as are
files Pillow cannot read and images of different sizes or channels where the options do not
make them one size (the message names the first such file, its size and the others').
"""

from __future__ import annotations

import collections
import concurrent.futures
import os

import numpy as np
from PIL import Image

from vae_jax.data.image_ops import ImageOptions, to_unit, transform, workers
from vae_jax.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg")
# Split folder names -> split name. `valid` and `validation` are the same split.
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
# Images decoded per unit of work of the thread pool.
_CHUNK = 64
_GREY_MODES = ("1", "LA", "La")
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _entries(directory: str) -> tuple[list[str], list[str], list[str]]:
    """(image files, sub-folders, other files) directly in ``directory``, sorted by name."""
    images, folders, others = [], [], []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    folders.append(entry.name)
                elif entry.name.lower().endswith(EXTENSIONS):
                    images.append(entry.name)
                else:
                    others.append(entry.name)
    except OSError as error:
        raise DataError(f"{directory}: cannot be listed ({error.strerror or error}).") from None
    return sorted(images), sorted(folders), sorted(others)


def _no_images(directory: str, others: list[str]) -> DataError:
    found = f"; it holds {len(others)} other files, e.g. {others[0]}" if others else ""
    return DataError(
        f"{directory}: no images (PNG or JPEG files: {', '.join(EXTENSIONS)}) in it or in its sub-folders{found}."
    )


def _split_files(directory: str) -> tuple[list[str], list[str | None]]:
    """(paths, class names or None) of the images of one split folder (or of a layout's root)."""
    images, folders, others = _entries(directory)
    if images and folders:
        raise DataError(
            f"{directory}: holds both images ({images[0]}, ...) and sub-folders ({', '.join(folders[:3])}): "
            "put every image in a class sub-folder (labels), or none in sub-folders (no labels)."
        )
    if images:
        return [os.path.join(directory, name) for name in images], [None] * len(images)
    if not folders:
        raise _no_images(directory, others)
    paths, classes = [], []
    for folder in folders:
        sub = os.path.join(directory, folder)
        names, _, sub_others = _entries(sub)
        if not names:
            raise _no_images(sub, sub_others)
        paths += [os.path.join(sub, name) for name in names]
        classes += [folder] * len(names)
    return paths, classes


def list_folder(directory: str) -> dict[str, tuple[list[str], list[str | None]]]:
    """{split: (image paths, class names or None)} of a folder dataset, in sorted order."""
    if not os.path.isdir(directory):
        what = "is not a folder" if os.path.exists(directory) else "does not exist"
        raise DataError(
            f"{directory} {what}: --config.data.name=folder reads the PNG/JPEG images of the folder "
            "--config.data.data_dir=DIR (docs/data.md)."
        )
    images, folders, _ = _entries(directory)
    splits = [f for f in folders if f in SPLIT_FOLDERS]
    if not splits:
        return {"train": _split_files(directory)}
    others = [f for f in folders if f not in SPLIT_FOLDERS]
    if others or images:
        extra = ", ".join([f + "/" for f in others] + images[:3])
        raise DataError(
            f"{directory}: has split folders ({', '.join(f + '/' for f in splits)}) and also {extra}: with split "
            "folders every image belongs in train/, valid/ (or validation/) or test/."
        )
    if "valid" in splits and "validation" in splits:
        raise DataError(f"{directory}: has both valid/ and validation/ (the same split): keep one of them.")
    if "train" not in splits:
        raise DataError(
            f"{directory}: has {', '.join(f + '/' for f in splits)} but no train/ folder of training images."
        )
    out = {}
    for split in ("train", "valid", "test"):
        folder = next((f for f in splits if SPLIT_FOLDERS[f] == split), None)
        if folder is not None:
            out[split] = _split_files(os.path.join(directory, folder))
    labelled = {split: classes[0] is not None for split, (_, classes) in out.items()}
    if len(set(labelled.values())) > 1:
        have = [f"{s}/" for s, v in labelled.items() if v]
        lack = [f"{s}/" for s, v in labelled.items() if not v]
        raise DataError(
            f"{directory}: {', '.join(have)} hold class sub-folders but {', '.join(lack)} hold images directly: "
            "use class sub-folders in every split, or in none."
        )
    return out


def read_image(path: str) -> np.ndarray:
    """The image at ``path`` as uint8 ``[H, W, C]`` (C = 1 grey or 3 RGB; see the module docstring)."""
    try:
        with Image.open(path, formats=("PNG", "JPEG")) as image:
            mode = image.mode
            if mode in _DEEP_MODES:
                raise DataError(
                    f"{path}: a {mode} (16- or 32-bit) image; only 8-bit images are read: save it as 8-bit grey or RGB."
                )
            if mode not in ("L", "RGB"):
                if mode in _GREY_MODES:
                    image = image.convert("L")
                elif mode in ("P", "PA", "RGBA", "RGBa"):
                    image = image.convert("RGBA")
                else:
                    image = image.convert("RGB")
            array = np.asarray(image)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: not a readable PNG or JPEG image ({type(error).__name__}: {error}).") from None
    if array.ndim == 2:
        array = array[..., None]
    return array[..., :3]


def _describe(shape: tuple[int, int, int]) -> str:
    return f"{shape[0]}x{shape[1]} pixels, {'grey (1 channel)' if shape[2] == 1 else 'RGB (3 channels)'}"


def _check_shapes(paths: list[str], shapes: list[tuple], directory: str) -> None:
    """One output shape for every image, else a `DataError` naming the first odd file."""
    counts = collections.Counter(shapes)
    if len(counts) == 1:
        return
    common, count = counts.most_common(1)[0]
    index = next(i for i, s in enumerate(shapes) if s != common)
    odd = shapes[index]
    if odd[:2] != common[:2]:
        fix = (
            "make them one size with --config.data.crop=SIDE (a centre square crop) and/or "
            "--config.data.image_size=SIDE (a resize), or resize the files"
        )
    else:
        fix = "make them one kind with --config.data.channels=1 (grey) or --config.data.channels=3 (RGB)"
    raise DataError(
        f"{paths[index]}: {_describe(odd)}, but {count} of the {len(paths)} images of {directory} are "
        f"{_describe(common)} ({len(paths) - count} differ; this is the first in sorted order): {fix}."
    )


def load_folder(directory: str, options: ImageOptions) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{split: (float32 images [N, H, W, C] in [0, 1], int32 labels [N] or None)} of the folder
    dataset in ``directory`` (module docstring), with ``options`` applied to every image."""
    listing = list_folder(directory)
    paths = [p for split_paths, _ in listing.values() for p in split_paths]
    classes = sorted({c for _, split_classes in listing.values() for c in split_classes if c is not None})
    index = {name: i for i, name in enumerate(classes)}

    def load(path: str) -> np.ndarray:
        image = read_image(path)
        return image if options.identity else transform(image[None], options, path, threads=False)[0]

    first = load(paths[0])  # its shape and dtype size the array every image is written into
    out = np.empty((len(paths), *first.shape), first.dtype)
    shapes = [first.shape] * len(paths)

    def run(start: int) -> None:
        for i in range(start, min(start + _CHUNK, len(paths))):
            image = first if i == 0 else load(paths[i])
            shapes[i] = image.shape
            if image.shape == first.shape:
                out[i] = image

    with concurrent.futures.ThreadPoolExecutor(workers()) as pool:
        try:
            for _ in pool.map(run, range(0, len(paths), _CHUNK)):
                pass
        except BaseException:  # the first unreadable file (in sorted order): stop decoding the rest
            pool.shutdown(cancel_futures=True)
            raise
    _check_shapes(paths, shapes, directory)
    splits, start = {}, 0
    for split, (split_paths, split_classes) in listing.items():
        stop = start + len(split_paths)
        labels = np.array([index[c] for c in split_classes], np.int32) if classes else None
        splits[split] = (to_unit(out[start:stop]), labels)
        start = stop
    return splits


def first_image_shape(directory: str) -> tuple[int, int, int]:
    """(H, W, C) of the first image (in sorted order) of the folder dataset, as stored."""
    listing = list_folder(directory)
    return tuple(read_image(listing["train"][0][0]).shape)
