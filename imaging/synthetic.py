"""A built-in synthetic image dataset: one shape or texture per class on a noisy background.

Each image is grayscale uint8: a smooth random background, one pattern at a
random position, scale, orientation and contrast, and pixel noise, so classes
differ by shape, not by brightness. The same arguments always give the same
images.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipelines.errors import ConfigError, suggest

Pattern = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]
"""(dy, dx, radius, angle) -> mask in [0, 1]; dy/dx are pixel offsets from the pattern centre."""


def _disc(dy, dx, r, angle):
    return (np.hypot(dy, dx) <= r).astype(np.float32)


def _ring(dy, dx, r, angle):
    d = np.hypot(dy, dx)
    return ((d <= r) & (d >= 0.6 * r)).astype(np.float32)


def _square(dy, dx, r, angle):
    u, v = _rotate(dy, dx, angle)
    return ((np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)).astype(np.float32)


def _cross(dy, dx, r, angle):
    u, v = _rotate(dy, dx, angle)
    arm = 0.25 * r
    return (((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))).astype(np.float32)


def _stripes(dy, dx, r, angle):
    u, _ = _rotate(dy, dx, angle)
    return ((np.sin(np.pi * u / max(r / 3, 1.5)) > 0) & (np.hypot(dy, dx) <= 1.3 * r)).astype(np.float32)


def _checker(dy, dx, r, angle):
    u, v = _rotate(dy, dx, angle)
    cell = max(r / 2.5, 1.5)
    inside = (np.abs(u) <= r) & (np.abs(v) <= r)
    return (((np.floor(u / cell) + np.floor(v / cell)) % 2 == 0) & inside).astype(np.float32)


def _rotate(dy: np.ndarray, dx: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle), np.sin(angle)
    return c * dy - s * dx, s * dy + c * dx


PATTERNS: dict[str, Pattern] = {"disc": _disc, "ring": _ring, "square": _square, "cross": _cross,
                                "stripes": _stripes, "checker": _checker}


def synthesize_images(kinds: list[str], n_per_class: int, size: tuple[int, int], seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_per_class`` grayscale images of every pattern in ``kinds``.

    Args:
        kinds: pattern names from :data:`PATTERNS`, one per class.
        n_per_class: images per class.
        size: ``(height, width)`` in pixels.
        seed: random seed.

    Returns:
        ``(images, labels)``: uint8 ``(n, H, W)`` and the index into ``kinds`` of each
        image, classes interleaved.

    Raises:
        ConfigError: an unknown pattern name.
    """
    for kind in kinds:
        if kind not in PATTERNS:
            raise ConfigError(f"data.image.synthetic_classes: unknown pattern {kind!r}"
                              f"{suggest(kind, PATTERNS)}; available: {', '.join(PATTERNS)}")
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    labels = np.tile(np.arange(len(kinds)), n_per_class)
    images = np.empty((len(labels), height, width), np.uint8)
    for i, label in enumerate(labels):
        images[i] = _draw(PATTERNS[kinds[label]], yy, xx, rng)
    return images, labels


def _draw(pattern: Pattern, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One image: smooth background + pattern of random placement and contrast + noise."""
    height, width = yy.shape
    side = min(height, width)
    radius = rng.uniform(0.18, 0.3) * side
    cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
    gy, gx = rng.normal(size=2) * 20 / side
    background = 100 + gy * (yy - height / 2) + gx * (xx - width / 2)
    contrast = rng.uniform(50, 110)
    image = background + contrast * pattern(yy - cy, xx - cx, radius, rng.uniform(0, np.pi))
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
