"""Test-time augmentation views of image batches, as serialisable Keras layers.

``hflip`` and ``vflip`` mirror the image; ``shift`` adds four views shifted by
1/16 of the image side (at least one pixel) up, down, left and right, with
reflected borders. :func:`pipelines.averaging.tta_model` averages the model's
softmax over the identity and these views.
"""

from __future__ import annotations

import keras
from keras import ops

from pipelines.errors import ConfigError, suggest

VIEWS = ("hflip", "vflip", "shift")


@keras.saving.register_keras_serializable(package="biomed")
class ImageView(keras.layers.Layer):
    """One deterministic view of an ``(n, H, W, C)`` batch: an optional flip, then a shift in pixels.

    Args:
        flip: "none", "horizontal" or "vertical".
        shift: ``(dy, dx)`` pixels (positive: content moves down / right), borders reflected.
    """

    def __init__(self, flip: str = "none", shift: tuple[int, int] = (0, 0), **kwargs) -> None:
        super().__init__(**kwargs)
        self.flip = flip
        self.shift = (int(shift[0]), int(shift[1]))

    def call(self, images):
        if self.flip != "none":
            images = ops.flip(images, axis=2 if self.flip == "horizontal" else 1)
        dy, dx = self.shift
        if dy or dx:
            height, width = images.shape[1], images.shape[2]
            padded = ops.pad(images, [[0, 0], [abs(dy), abs(dy)], [abs(dx), abs(dx)], [0, 0]], mode="reflect")
            top, left = abs(dy) - dy, abs(dx) - dx
            images = padded[:, top:top + height, left:left + width, :]
        return images

    def get_config(self) -> dict:
        return {**super().get_config(), "flip": self.flip, "shift": list(self.shift)}


def image_views(names: list[str], image_size: int) -> list[keras.layers.Layer]:
    """The view layers of the named TTA views (identity not included).

    Raises:
        ConfigError: an unknown view name.
    """
    views: list[keras.layers.Layer] = []
    for name in names:
        if name not in VIEWS:
            raise ConfigError(f"evaluation.tta: unknown image view {name!r}{suggest(name, VIEWS)}; "
                              f"valid: {', '.join(VIEWS)}")
        if name == "shift":
            step = max(1, round(image_size / 16))
            views += [ImageView(shift=s) for s in ((step, 0), (-step, 0), (0, step), (0, -step))]
        else:
            views.append(ImageView(flip="horizontal" if name == "hflip" else "vertical"))
    return views
