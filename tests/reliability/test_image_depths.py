"""Images whose pixels decoded to black (third probe, issue 25 item 8): 32-bit float and integer samples have no
fixed range, so they are refused where every image is decoded (`load_rgb`); 8- and 16-bit images still load."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tame.data.images import DecodeError, load_rgb

RNG = np.random.default_rng(0)
REFUSED = {
    "float-0..1": (RNG.random((16, 16), dtype=np.float32), "floating-point"),
    "float-0..255": ((RNG.random((16, 16)) * 255).astype(np.float32), "floating-point"),
    "int32-0..255": (RNG.integers(0, 256, (16, 16)).astype(np.int32), "32-bit integer"),
    "int32-0..65535": (RNG.integers(0, 65536, (16, 16)).astype(np.int32), "32-bit integer"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_32_bit_samples_are_refused_not_black(tmp_path, name):
    pixels, kind = REFUSED[name]
    Image.fromarray(pixels).save(tmp_path / "x.tif", format="TIFF")
    with pytest.raises(DecodeError, match=rf"{kind} pixels have no fixed range .* convert the image to 8 or 16 bits"):
        load_rgb(tmp_path / "x.tif")


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_images_are_still_scaled(tmp_path, suffix):
    pixels = np.full((16, 16), 65535, dtype=np.uint16)
    pixels[:8] = 32768
    Image.fromarray(pixels).save(tmp_path / f"x.{suffix}")
    values = np.asarray(load_rgb(tmp_path / f"x.{suffix}"))
    assert values.shape == (16, 16, 3) and values[0, 0, 0] == 128 and values[-1, -1, 0] == 255
