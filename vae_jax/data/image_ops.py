"""What every image source does to its images: check them, scale them to [0, 1], crop, resize,
and make them grey or colour, the same way for every route (`vae_jax.data.datasets`).

    options = ImageOptions(crop=140, image_size=64, channels=3)
    x = transform(images, options, where="DIR/train")  # float32 [N, 64, 64, 3] in [0, 1]

Input images are ``[N, H, W, C]`` (C = 1 or 3), uint8 grey levels 0..255 (scaled by ``1/255``)
or floats already in [0, 1] (`unit_images` checks arrays that come from a user). The steps, in
this order (each skipped when its option is 0):

1. ``crop``: the centre ``crop x crop`` square (top/left offset ``(H - crop) // 2``); an image
   smaller than ``crop`` on either side is a `DataError`;
2. ``image_size``: a non-square image is first cut to its centre square (side ``min(H, W)``,
   so that nothing is stretched), then resized to ``image_size x image_size`` with Pillow's
   antialiased bilinear filter on the float32 values (mode ``F``): the filter's weights are
   non-negative, so the result stays in [0, 1]; an image already that size is left unchanged;
3. ``channels``: 1 turns colour into grey with ITU-R 601-2 luma
   ``0.299 R + 0.587 G + 0.114 B`` (Pillow's ``convert("L")`` weights, in float32), done before
   the resize; 3 repeats a grey channel three times, after the resize; 0 keeps what is stored.

The result is clipped to [0, 1] (float rounding of the luma). With every option 0 the images are
only scaled: ``uint8 -> float32 / 255``, bit for bit what the IDX reader of `vae_jax.data.datasets` does.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import numpy as np
from PIL import Image

from vae_jax.errors import DataError

# ITU-R 601-2 luma weights (Pillow's convert("L")).
LUMA = (0.299, 0.587, 0.114)
# Images per unit of work of the thread pools (a chunk is converted to float32 at a time).
CHUNK = 256


def workers() -> int:
    """Threads for decoding and resizing: Pillow releases the GIL while it decodes and resizes."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class ImageOptions:
    """``config.data.crop``, ``image_size`` and ``channels`` (0: off / as stored)."""

    crop: int = 0
    image_size: int = 0
    channels: int = 0

    @property
    def identity(self) -> bool:
        return not (self.crop or self.image_size or self.channels)

    def output_shape(self, height: int, width: int, channels: int) -> tuple[int, int, int]:
        """(H, W, C) of the result for stored images of (height, width, channels)."""
        if self.crop:
            height = width = self.crop
        if self.image_size:
            height = width = self.image_size
        return (height, width, self.channels or channels)


def unit_images(images, where: str) -> np.ndarray:
    """Checks a user's image array and returns it as ``[N, H, W, C]`` (C = 1 or 3), uint8 kept
    as is (scaled later by `transform`), floats as float32; `DataError` naming ``where``
    otherwise: not an array of numbers, rank other than 3 or 4, 0 images, other channels, a
    dtype other than uint8 or float, NaN or infinite values, or float values outside [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            f"{where}: images have shape {images.shape} (rank {images.ndim}); expected (N, H, W) for grey "
            "images or (N, H, W, C) with C = 1 (grey) or 3 (RGB) channels."
        )
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{where}: contains no images (shape {images.shape}).")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(
            f"{where}: images have dtype {images.dtype}; expected uint8 (grey levels 0..255, scaled by 1/255) "
            "or float (values in [0, 1])."
        )
    flat = images.reshape(images.shape[0], -1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        count = int((~np.isfinite(flat)).sum())
        raise DataError(
            f"{where}: {count} values are NaN or infinite (in {int(bad.sum())} images, the first is image "
            f"{first}); the data are corrupt."
        )
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    bad = (lo < 0) | (hi > 1)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{where}: float values span [{float(lo.min()):g}, {float(hi.max()):g}] ({int(bad.sum())} images "
            f"outside [0, 1], the first is image {first}); float images must lie in [0, 1] (uint8 images "
            "0..255 are scaled by 1/255)."
        )
    return images.astype(np.float32, copy=False)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 grey levels -> float32 in [0, 1] (255 maps to exactly 1.0); float32 unchanged."""
    if images.dtype != np.uint8:
        return np.asarray(images, np.float32)
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    return out


def _centre(images: np.ndarray, height: int, width: int) -> np.ndarray:
    top, left = (images.shape[1] - height) // 2, (images.shape[2] - width) // 2
    return images[:, top : top + height, left : left + width]


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """float32 ``[n, s, s, C]`` -> ``[n, size, size, C]``, Pillow's bilinear filter per channel."""
    out = np.empty((images.shape[0], size, size, images.shape[-1]), np.float32)
    for i, image in enumerate(images):
        for c in range(image.shape[-1]):
            resized = Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (size, size), Image.Resampling.BILINEAR
            )
            out[i, ..., c] = np.asarray(resized)
    return out


def _transform_chunk(images: np.ndarray, options: ImageOptions) -> np.ndarray:
    """`transform` of images that are already centre-cropped (steps 2 and 3)."""
    x = to_unit(images)
    if options.channels == 1 and x.shape[-1] == 3:
        r, g, b = (np.float32(w) for w in LUMA)
        x = (x[..., 0] * r + x[..., 1] * g + x[..., 2] * b)[..., None]
    if options.image_size and x.shape[1] != options.image_size:
        x = _resize(x, options.image_size)
    if options.channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x, 0.0, 1.0)  # a new array: never the caller's


def transform(images: np.ndarray, options: ImageOptions, where: str, *, threads: bool = True) -> np.ndarray:
    """``[N, H, W, C]`` uint8 (0..255) or float32 (in [0, 1]) images -> float32 ``[N, h, w, c]``
    in [0, 1] after the steps of the module docstring; `DataError` naming ``where`` for images
    smaller than ``options.crop``. ``threads``: resize chunks of `CHUNK` images in a thread pool."""
    n, height, width, _ = images.shape
    if options.crop:
        if height < options.crop or width < options.crop:
            raise DataError(
                f"{where}: images are {height}x{width} pixels, smaller than --config.data.crop={options.crop} "
                f"(the side of the centre square crop): use --config.data.crop={min(height, width)} or less."
            )
        images = _centre(images, options.crop, options.crop)
    if options.image_size and images.shape[1] != images.shape[2]:
        side = min(images.shape[1], images.shape[2])
        images = _centre(images, side, side)
    if options.identity:
        return to_unit(images)
    resizing = options.image_size and images.shape[1] != options.image_size
    if not resizing or not threads or n <= CHUNK:
        return _transform_chunk(images, options)
    shape = (n, *options.output_shape(images.shape[1], images.shape[2], images.shape[3]))
    out = np.empty(shape, np.float32)

    def run(start: int) -> None:
        out[start : start + CHUNK] = _transform_chunk(images[start : start + CHUNK], options)

    with concurrent.futures.ThreadPoolExecutor(workers()) as pool:
        for _ in pool.map(run, range(0, n, CHUNK)):
            pass
    return out
