"""Image files as inputs of ``biomed predict``: found in folders, decoded and resized as the card says."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow as tf

from imaging.data import tf_error_text
from pipelines.errors import RecordError
from pipelines.image_limits import DEFAULT_MAX_PIXELS, check_image_pixels
from pipelines.plugins import InputReader

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_image(path: Path, card: dict[str, Any]) -> np.ndarray:
    """Decode one image file and resize it to the card's size: float32 ``(1, H, W, C)`` in [0, 255].

    Raises:
        RecordError: the file does not exist, is larger than the card's pixel limit or cannot be decoded.
    """
    if path.is_dir():
        wanted = ", ".join(IMAGE_SUFFIXES)
        raise RecordError(f"folder with no {wanted} files among its {sum(1 for _ in path.iterdir())} entries")
    if not path.is_file():
        raise RecordError("no such image file")
    image = card.get("image") or {}
    height, width = image.get("image_size") or card["input"]["shape"][1:3]
    channels = image.get("channels") or card["input"]["shape"][3]
    if path.stat().st_size == 0:
        raise RecordError("empty file (0 bytes)")
    check_image_pixels(path, image.get("max_pixels") or DEFAULT_MAX_PIXELS)
    try:
        decoded = tf.io.decode_image(tf.io.read_file(str(path)), channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
        raise RecordError(f"cannot decode image: {tf_error_text(err)}") from None
    resized = tf.image.resize(tf.cast(decoded, tf.float32), (height, width))
    return resized.numpy()[None].astype(np.float32)


def expand_images(path: Path) -> Iterator[Path]:
    """A folder expands (sorted) to its image files; any other path (or a folder without images) as given."""
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) or [path]
    else:
        yield path


IMAGE_INPUTS = InputReader(expand=expand_images, read=load_image, name=lambda path: path.stem)
