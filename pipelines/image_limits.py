"""Check an image file's declared size before decoding it: a small PNG can decode to gigabytes."""

from __future__ import annotations

import os
import warnings

from PIL import Image, UnidentifiedImageError

from pipelines.errors import RecordError

DEFAULT_MAX_PIXELS = 40_000_000


def check_image_pixels(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels (width × height).

    Only the header is read (Pillow opens images lazily). Files Pillow cannot identify pass:
    the decoder reports them.

    Raises:
        RecordError: the declared size is over the limit, with the size and the limit.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError as err:
        raise RecordError(f"image too large to decode ({err}); limit data.image.max_pixels={max_pixels}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return
    if width * height > max_pixels:
        raise RecordError(f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                          f"{max_pixels:,} (data.image.max_pixels); not decoded")
