"""Decoding to RGB and the resize/crop geometry that both loaders (DALI and PIL) share, so their crops agree.

Geometry (train and eval): resize so the shorter side is ``resize`` (long side ``resize * long // short``, integer
arithmetic, as torchvision computes it; small images are resized up), then crop ``crop`` x ``crop`` at
``anchor = floor(position * (size - crop) + 0.5)`` per axis with position 0.5 for the centre crop and a random
position in [0, 1] for training (DALI's ``crop_pos_x/y`` rounding; torchvision's centre crop rounds half to even
and would sit one pixel off for odd margins). The resize is antialiased ``bilinear`` or ``bicubic`` (the model's
own, see :mod:`tame.models.preprocessing`).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image, ImageOps

# formats both backends decode (DALI 2.4's CPU decoder refuses GIF, which PIL would read)
# file endings of the formats above, for finding images in folders
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".jp2")
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "JPEG2000", "PPM")
RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}  # antialiased in PIL


def resampling(interpolation: str) -> Image.Resampling:
    """PIL's filter for ``bilinear`` or ``bicubic``."""
    if interpolation not in RESAMPLING:
        raise ValueError(f"interpolation {interpolation!r} is not one of {', '.join(RESAMPLING)}")
    return RESAMPLING[interpolation]


# the longer side at most this many times the shorter: resizing the shorter side of a 1 x 30,000 strip to 256 px
# would take 256 x 7.7 M pixels (6 GB); real photos (panoramas included) stay far below
MAX_ASPECT_RATIO = 100


class DecodeError(Exception):
    """An image file that cannot be decoded (the message says why)."""


def resized_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``shorter``."""
    if height <= width:
        return shorter, shorter * width // height
    return shorter * height // width, shorter


def crop_anchor(size: int, crop: int, position: float) -> int:
    """Top/left offset of a ``crop`` window in ``size`` pixels at ``position`` in [0, 1] (0.5 = centre)."""
    return math.floor(float(np.float32(position)) * (size - crop) + 0.5)


def _to_8bit_rgb(image: Image.Image, file_format: str | None) -> Image.Image:
    if image.mode == "F" or image.mode == "I" and file_format != "PNG":  # a 32-bit sample (PNG's "I" is 16-bit)
        kind = "floating-point" if image.mode == "F" else "32-bit integer"
        raise DecodeError(
            f"{kind} pixels have no fixed range (0..1? 0..255?), so their brightness is unknown: convert the image "
            "to 8 or 16 bits per channel"
        )
    if image.mode.startswith("I"):  # 16-bit (I;16, I;16B, ...) or 32-bit integer greyscale: scale 0..65535 to 0..255
        values = np.asarray(image).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


def check_aspect_ratio(width: int, height: int) -> None:
    """A :class:`DecodeError` for an image whose resize would cost far more than its file suggests."""
    short, long = sorted((max(width, 0), max(height, 0)))
    if short == 0 or long > MAX_ASPECT_RATIO * short:
        raise DecodeError(
            f"a {width} x {height} image is too elongated to resize (aspect ratio at most 1:{MAX_ASPECT_RATIO})"
        )


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image to 8-bit RGB, applying EXIF orientation (as DALI does).

    Greyscale, palette, CMYK, RGBA/LA (alpha dropped) and 16-bit images are converted; 32-bit float or integer
    pixels (TIFF), whose range is unknown, are refused (they decoded to black); anything PIL cannot read
    completely (truncated, corrupt, empty, not an image) or that DALI cannot decode raises :class:`DecodeError`.
    """
    try:
        with Image.open(path) as image:
            if image.format not in SUPPORTED_FORMATS:
                raise DecodeError(
                    f"{image.format} images are not supported (DALI cannot decode them); convert it to JPEG or PNG"
                )
            check_aspect_ratio(*image.size)  # from the header, before any pixel is decoded
            image.load()
            return _to_8bit_rgb(ImageOps.exif_transpose(image), image.format)
    except DecodeError:
        raise
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise DecodeError(f"cannot decode: {err}") from None


def resize_and_crop(
    image: Image.Image,
    resize: int,
    crop: int,
    pos_x: float,
    pos_y: float,
    flip: bool,
    interpolation: str,
) -> Image.Image:
    """Resize the shorter side to ``resize`` (antialiased ``interpolation``: the model's own, no default), crop
    ``crop`` x ``crop`` at the given positions in [0, 1] (0.5: centre) and optionally mirror: the transform both
    loaders apply."""
    height, width = resized_size(image.height, image.width, resize)
    image = image.resize((width, height), resampling(interpolation))
    top, left = crop_anchor(height, crop, pos_y), crop_anchor(width, crop, pos_x)
    image = image.crop((left, top, left + crop, top + crop))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else image


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> [3, H, W] uint8."""
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def eval_image(path: str | os.PathLike, resize: int, crop: int, center_crop: bool, interpolation: str) -> torch.Tensor:
    """One image with the evaluation transform -> [3, crop, crop] float32 in [0, 1].

    ``center_crop=False``: the whole image resized to ``crop`` x ``crop`` instead. ``interpolation``: the model's
    (``classifier.preprocessing.interpolation``; no default, so no caller resizes bilinearly by omission). Raises
    :class:`DecodeError`.
    """
    image = load_rgb(path)
    if center_crop:
        image = resize_and_crop(image, resize, crop, 0.5, 0.5, False, interpolation)
    else:
        image = image.resize((crop, crop), resampling(interpolation))
    return to_uint8_tensor(image).float().div_(255)
