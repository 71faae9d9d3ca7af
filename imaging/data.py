"""Turn an image data config into a :class:`SampleSet` of labelled images and the official split.

Sources (``data.source``):

* ``image_folders``: ``data.path/<class>/<image>``, or ``data.path/{train,val,test}/<class>/<image>``
  (an official split when ``data.image.official_split``).
* ``image_csv``: ``data.path`` is a CSV with ``data.image.path_column`` (relative to the CSV's
  folder), ``label_column`` and optionally ``patient_column``; an optional ``split`` column
  (train/val/test) is the official split.
* ``image_npz``: MedMNIST-style arrays ``<split>_images`` ``(N, H, W[, C])`` and
  ``<split>_labels`` ``(N,)``/``(N, 1)`` of integers, named by ``data.task.classes`` (label
  ``i`` is ``classes[i]`` unless ``data.task.label_map`` maps ``"i"``). Float arrays in [0, 1]
  are scaled to [0, 255].
* ``synthetic_images``: :mod:`imaging.synthetic`, ``data.image.n_per_class`` images per
  pattern of ``data.image.synthetic_classes``, seeded by ``data.synthetic.seed``.

Images come out float32 ``(n, H, W, C)`` in [0, 255], resized (bilinear, antialiased) to
``data.image.image_size``, with ``data.image.channels`` channels (grayscale repeated to
RGB, or RGB converted to grayscale). Files are decoded with ``tf.io`` in a parallel
``tf.data`` map. Unusable inputs (corrupt or missing files, arrays of the wrong dtype or
shape, non-finite pixels, labels outside the classes) are skipped and listed in
``SampleSet.skipped`` with the reason. When an official split lacks a test (or val) part,
it is carved, stratified, from the train part with ``data.split.test`` (``data.split.val``)
and ``data.split.seed``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from imaging.synthetic import synthesize_images
from pipelines.config import DataConfig, TaskConfig
from pipelines.errors import DataError, RecordError
from pipelines.image_limits import DEFAULT_MAX_PIXELS, check_image_pixels
from pipelines.samples import SampleSet
from pipelines.splits import SPLITS, group_labels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DECODE_BATCH = 256
Progress = Callable[[int, int], None]


@dataclass
class _Listing:
    """What a source lists before decoding: one entry per image (files or array rows)."""

    records: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    by_index: bool = False

    def add(self, record: str, label: str, *, group: str | None = None, split: str | None = None,
            path: str | None = None, pixels: np.ndarray | None = None) -> None:
        self.records.append(record)
        self.groups.append(group or record)
        self.labels.append(label)
        self.splits.append(split)
        if path is not None:
            self.paths.append(path)
        if pixels is not None:
            self.pixels.append(pixels)


def load_image_samples(data: DataConfig, progress: Progress | None = None
                       ) -> tuple[SampleSet, dict[str, np.ndarray] | None]:
    """Load the configured image source.

    Args:
        data: the validated data config (an image source).
        progress: optional callback ``(done_images, total_images)``.

    Returns:
        ``(samples, official)``: the images and ``{"train"|"val"|"test": group ids}`` of the
        source's own split, or None (no split in the source, or ``official_split`` off).

    Raises:
        DataError: the source cannot be read or no usable image is left.
    """
    listing = _LISTERS[data.source](data)
    keep, y, excluded, skipped = _map_labels(listing, data.task)
    size = tuple(data.image.image_size)
    index = np.flatnonzero(keep)
    if listing.paths:
        x, failed = _decode_files([listing.paths[i] for i in index], size, data.image.channels, progress,
                                  data.image.max_pixels)
    else:
        x, failed = _convert_arrays([listing.pixels[i] for i in index], size, data.image.channels, progress)
    skipped += [{"record": listing.records[index[j]], "reason": reason} for j, reason in failed.items()]
    good = np.setdiff1d(np.arange(len(index)), list(failed))
    index = index[good]
    if not len(index):
        raise DataError(f"no usable images in {data.path or data.source} ({len(listing.records)} listed, "
                        f"{len(listing.skipped) + len(skipped)} skipped, {sum(excluded.values())} excluded)")
    records = np.array(listing.records)[index]
    groups = np.array(listing.groups)[index]
    samples = SampleSet(x[good], y[index], records, groups, np.zeros(len(index), np.int32),
                        list(data.task.classes), None, listing.skipped + skipped, dict(excluded))
    if not data.image.official_split:
        return samples, None
    return samples, official_assignment(samples, [listing.splits[i] for i in index], data)


def official_assignment(samples: SampleSet, splits: list[str | None], data: DataConfig
                        ) -> dict[str, np.ndarray] | None:
    """Group ids per split from the source's split names; carve missing val/test from train.

    Returns None when the source has no train part (no official split to follow).

    Raises:
        DataError: a group (patient) appears in more than one official split.
    """
    if "train" not in splits:
        return None
    split_of: dict[str, str] = {}
    for group, split in zip(samples.group, splits):
        if split_of.setdefault(group, split) != split:
            raise DataError(f"group {group!r} appears in the official {split_of[group]} and {split} splits")
    members = {name: np.array(sorted(g for g, s in split_of.items() if s == name)) for name in SPLITS}
    for name, fraction, offset in (("test", data.split.test, 0), ("val", data.split.val, 1)):
        if not len(members[name]):
            members["train"], members[name] = _carve(samples, members["train"], fraction,
                                                     data.split.seed + offset)
    return members


def _carve(samples: SampleSet, groups: np.ndarray, fraction: float, seed: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``groups`` into (rest, part) of about ``fraction``, stratified when every class has 2+ groups."""
    subset = samples.subset(np.isin(samples.group, groups))
    ids, labels = group_labels(subset.group, subset.y)
    stratify = labels if np.bincount(labels).min(initial=len(labels)) >= 2 else None
    rest, part = train_test_split(ids, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(rest), np.sort(part)


# ----------------------------------------------------------------------------- sources

def _list_folders(data: DataConfig) -> _Listing:
    """``<root>/<class>/<file>`` or ``<root>/<split>/<class>/<file>``."""
    root = Path(data.path)
    listing = _Listing()
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    for split_dir in split_dirs or [root]:
        split = split_dir.name if split_dirs else None
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                record = path.relative_to(root).as_posix()
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    listing.add(record, class_dir.name, split=split, path=str(path))
                else:
                    listing.skipped.append({"record": record, "reason": "not an image file: "
                                            f"suffix {path.suffix or '(none)'} not in {IMAGE_SUFFIXES}"})
    return listing


def _list_csv(data: DataConfig) -> _Listing:
    """Rows of the index CSV: path, label[, patient][, split]."""
    cfg, csv_path = data.image, Path(data.path)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [cfg.path_column, cfg.label_column] + ([cfg.patient_column] if cfg.patient_column else [])
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        raise DataError(f"{csv_path}: expected a header with columns {columns}"
                        + (f"; missing {missing}" if missing else "; the file has no rows"))
    listing = _Listing()
    for number, row in enumerate(rows, start=2):
        record, label = (row.get(cfg.path_column) or "").strip(), (row.get(cfg.label_column) or "").strip()
        if not record or not label:
            listing.skipped.append({"record": record or f"{csv_path.name}:{number}",
                                    "reason": f"incomplete row: line {number} lacks a path or a label"})
            continue
        split = (row.get("split") or "").strip().lower() or None
        patient = (row.get(cfg.patient_column) or "").strip() if cfg.patient_column else ""
        listing.add(record, label, group=patient or None, split=split if split in SPLITS else None,
                    path=str(csv_path.parent / record))
    return listing


def _list_npz(data: DataConfig) -> _Listing:
    """``<split>_images`` / ``<split>_labels`` arrays; a bad array is skipped as a whole."""
    listing = _Listing(by_index=True)
    try:
        archive = np.load(data.path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{data.path}: not a readable .npz file ({err})") from None
    with archive:
        if "train_images" not in archive.files:
            raise DataError(f"{data.path}: no train_images array (found: {', '.join(archive.files)})")
        for split in SPLITS:
            if f"{split}_images" not in archive.files:
                continue
            try:
                images, labels = _checked_arrays(archive, split)
            except ValueError as err:
                listing.skipped.append({"record": f"{split}_images", "reason": f"bad array: {err}"})
                continue
            for i, (image, label) in enumerate(zip(images, labels)):
                listing.add(f"{split}_{i:05d}", str(label), split=split, pixels=image)
    return listing


def _checked_arrays(archive, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and integer labels of one split; ValueError when dtype or shape is wrong."""
    if f"{split}_labels" not in archive.files:
        raise ValueError(f"{split}_labels is missing")
    images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
    if images.dtype.kind not in "uif":
        raise ValueError(f"{split}_images has dtype {images.dtype}, expected integers or floats")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise ValueError(f"{split}_images has shape {images.shape}, expected (N, H, W) or (N, H, W, 1|3)")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{split}_labels has shape {labels.shape}, expected ({len(images)},) or "
                         f"({len(images)}, 1)")
    if labels.dtype.kind not in "iu" and not (labels.dtype.kind == "f" and np.all(labels == np.round(labels))):
        raise ValueError(f"{split}_labels has dtype {labels.dtype} with non-integer values")
    if images.dtype.kind == "f" and np.nanmax(images) <= 1.0:
        images = images * 255.0
    return images, labels.astype(np.int64)


def _list_synthetic(data: DataConfig) -> _Listing:
    """The built-in synthetic patterns, generated at the target size."""
    kinds = data.image.synthetic_classes
    images, labels = synthesize_images(kinds, data.image.n_per_class, tuple(data.image.image_size),
                                       seed=data.synthetic.seed)
    listing = _Listing()
    for i, (image, label) in enumerate(zip(images, labels)):
        listing.add(f"{kinds[label]}_{i // len(kinds):04d}", kinds[label], pixels=image)
    return listing


_LISTERS: dict[str, Callable[[DataConfig], _Listing]] = {
    "image_folders": _list_folders, "image_csv": _list_csv, "image_npz": _list_npz,
    "synthetic_images": _list_synthetic,
}


# ----------------------------------------------------------------------------- labels and pixels

def _map_labels(listing: _Listing, task: TaskConfig
                ) -> tuple[np.ndarray, np.ndarray, Counter, list[dict[str, str]]]:
    """(usable mask, class index per entry, excluded counts per raw label, skipped unknown labels)."""
    keep = np.zeros(len(listing.records), bool)
    y = np.full(len(listing.records), -1, np.int32)
    excluded: Counter = Counter()
    skipped = []
    for i, raw in enumerate(listing.labels):
        if listing.by_index and raw not in task.label_map:
            number = int(raw)
            kind, index = ("class", number) if 0 <= number < len(task.classes) else ("unknown", None)
        else:
            kind, index = task.map_label(raw)
        if kind == "class":
            keep[i], y[i] = True, index
        elif kind == "excluded":
            excluded[raw] += 1
        else:
            skipped.append({"record": listing.records[i],
                            "reason": f"label outside the classes: {raw!r} (classes {task.classes}, "
                                      f"label_map {task.label_map})"})
    return keep, y, excluded, skipped


def _convert_arrays(pixels: list[np.ndarray], size: tuple[int, int], channels: int,
                    progress: Progress | None) -> tuple[np.ndarray, dict[int, str]]:
    """Resize in-memory images in batches of equal shape; non-finite ones are reported as failed."""
    failed = {i: "bad pixels: non-finite values" for i, p in enumerate(pixels)
              if not np.all(np.isfinite(p))}
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(pixels):
        if i not in failed:
            by_shape[image.shape].append(i)
    out = np.zeros((len(pixels), *size, channels), np.float32)
    done = len(failed)
    for indices in by_shape.values():
        for start in range(0, len(indices), DECODE_BATCH):
            chunk = indices[start:start + DECODE_BATCH]
            batch = np.stack([pixels[i] for i in chunk]).astype(np.float32)
            out[chunk] = _to_model_images(batch if batch.ndim == 4 else batch[..., None], size, channels)
            done += len(chunk)
            if progress is not None:
                progress(done, len(pixels))
    return out, failed


def _to_model_images(batch: np.ndarray | tf.Tensor, size: tuple[int, int], channels: int) -> np.ndarray:
    """``(n, h, w, c)`` to float32 ``(n, *size, channels)`` in [0, 255]."""
    images = tf.cast(batch, tf.float32)
    if images.shape[-1] != channels:
        images = tf.image.grayscale_to_rgb(images) if channels == 3 else tf.image.rgb_to_grayscale(images)
    if tuple(images.shape[1:3]) != size:
        images = tf.image.resize(images, size, method="bilinear", antialias=True)
    return tf.clip_by_value(images, 0.0, 255.0).numpy()


def _decode_files(paths: list[str], size: tuple[int, int], channels: int, progress: Progress | None,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, dict[int, str]]:
    """Decode and resize image files in a parallel tf.data map; failures come back with their reason.

    Files whose header declares more than ``max_pixels`` pixels are not decoded.
    """

    def load(i, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, dtype=tf.float32,
                                   expand_animations=False)  # [0, 1] for 8- and 16-bit files
        image = tf.image.resize(image * 255.0, size, method="bilinear", antialias=True)
        return i, tf.clip_by_value(image, 0.0, 255.0)

    out = np.zeros((len(paths), *size, channels), np.float32)
    seen = np.zeros(len(paths), bool)
    too_big = {}
    for i, path in enumerate(paths):
        try:
            check_image_pixels(path, max_pixels)
        except RecordError as err:
            too_big[i] = str(err)
    keep = np.array([i for i in range(len(paths)) if i not in too_big], np.int64)
    ds = (tf.data.Dataset.from_tensor_slices((keep, np.array([paths[i] for i in keep], dtype=str)))
          .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .ignore_errors().batch(DECODE_BATCH))
    for index, images in ds.as_numpy_iterator():
        out[index], seen[index] = images, True
        if progress is not None:
            progress(int(seen.sum()), len(paths))
    return out, {int(i): too_big.get(int(i)) or _decode_error(paths[i], channels) for i in np.flatnonzero(~seen)}


def _decode_error(path: str, channels: int) -> str:
    """Why one file failed to decode (decoded again eagerly to get TensorFlow's message)."""
    try:
        tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except tf.errors.NotFoundError:
        return f"unreadable file: {path} does not exist or cannot be read"
    except tf.errors.OpError as err:
        return f"corrupt image: {tf_error_text(err)}"


def tf_error_text(err: tf.errors.OpError) -> str:
    """The first line of TensorFlow's error text without its ``{{function_node ...}}`` prefix and
    ``[Op:...]`` suffix (the error's class name when it has no text)."""
    if not err.message:
        return type(err).__name__
    text = re.sub(r"^\{\{[^}]*\}\}\s*", "", err.message.splitlines()[0])
    return re.sub(r"\s*\[Op:.*$", "", text)[:160]
    return "corrupt image: decoding failed"
