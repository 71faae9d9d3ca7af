"""Image sources: folders, CSV, npz and synthetic images; resizing, channels, official splits, bad input."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines.config import DataConfig, ImageConfig, SplitConfig, TaskConfig
from pipelines.errors import DataError
from imaging.data import load_image_samples

SHARED = Path(__file__).resolve().parents[2] / "shared"


def write_png(path: Path, value: int, shape=(20, 24, 1)) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = tf.io.encode_png(np.full(shape, value, np.uint8)).numpy()
    path.write_bytes(data)
    return data


def config(source: str, path: Path | None, classes=("a", "b"), **image) -> DataConfig:
    return DataConfig(source=source, path=str(path) if path else None, task=TaskConfig(classes=list(classes)),
                      split=SplitConfig(val=0.25, test=0.25, seed=0),
                      image=ImageConfig(**{"image_size": [16, 16], **image}))


def reasons(samples) -> dict[str, str]:
    return {s["record"]: s["reason"] for s in samples.skipped}


def test_folders_resize_expand_gray_and_skip_bad_files(tmp_path):
    for i in range(3):
        write_png(tmp_path / "a" / f"a{i}.png", 10)
        write_png(tmp_path / "b" / f"b{i}.png", 200, shape=(30, 30, 3))
    good = write_png(tmp_path / "c" / "c0.png", 50)
    (tmp_path / "a" / "corrupt.png").write_bytes(b"\x89PNG not really an image")
    (tmp_path / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    samples, official = load_image_samples(config("image_folders", tmp_path))
    assert official is None
    assert samples.x.shape == (6, 16, 16, 3) and samples.x.dtype == np.float32
    assert samples.fs is None and set(samples.window) == {0}
    np.testing.assert_allclose(samples.x[samples.y == 0], 10, atol=1e-3)
    np.testing.assert_allclose(samples.x[samples.y == 1], 200, atol=1e-3)
    assert sorted(samples.record[samples.y == 0]) == ["a/a0.png", "a/a1.png", "a/a2.png"]
    why = reasons(samples)
    assert why["a/corrupt.png"].startswith("corrupt image")
    assert why["b/truncated.png"].startswith("corrupt image")
    assert not any("{{" in reason or "[Op:" in reason for reason in why.values())   # TensorFlow internals left out
    assert why["a/notes.txt"].startswith("not an image file")
    assert why["c/c0.png"].startswith("label outside the classes")


def test_folder_split_layout_is_the_official_split_with_carved_test(tmp_path):
    for split, n in (("train", 8), ("val", 2)):
        for label in "ab":
            for i in range(n):
                write_png(tmp_path / split / label / f"{i}.png", 100, shape=(16, 16, 1))
    samples, official = load_image_samples(config("image_folders", tmp_path, channels=1))
    assert samples.x.shape[-1] == 1
    assert sorted(official["val"]) == sorted(r for r in samples.record if r.startswith("val/"))
    assert len(official["test"]) == 4 and all(g.startswith("train/") for g in official["test"])
    assert not set(official["test"]) & set(official["train"])
    test_labels = samples.y[np.isin(samples.group, official["test"])]
    assert np.bincount(test_labels).tolist() == [2, 2]


def test_csv_groups_by_patient_and_skips_missing_files(tmp_path):
    write_png(tmp_path / "img" / "x0.png", 10)
    write_png(tmp_path / "img" / "x1.png", 20)
    (tmp_path / "index.csv").write_text("file,diagnosis,pid\nimg/x0.png,a,p1\nimg/x1.png,b,p1\n"
                                        "img/gone.png,a,p2\nimg/x0.png,,p3\n")
    samples, official = load_image_samples(config("image_csv", tmp_path / "index.csv", path_column="file",
                                                   label_column="diagnosis", patient_column="pid"))
    assert official is None
    assert list(samples.group) == ["p1", "p1"] and list(samples.y) == [0, 1]
    why = reasons(samples)
    assert why["img/gone.png"].startswith("unreadable file")
    assert any(r.startswith("incomplete row") for r in why.values())


def test_npz_labels_by_index_label_map_bad_arrays_and_carved_test(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    train_labels = np.array([0, 1] * 10 + [7])[:, None].astype(np.uint8)
    np.savez(path, train_images=rng.integers(0, 255, (21, 10, 10), dtype=np.uint8), train_labels=train_labels,
             val_images=rng.integers(0, 255, (4, 10, 10), dtype=np.uint8), val_labels=np.array([0, 1, 0, 1]),
             test_images=np.array([["x"] * 10] * 10), test_labels=np.zeros(1))
    data = config("image_npz", path, classes=("benign", "malignant"))
    data.task.label_map = {"0": "malignant", "1": "benign"}
    samples, official = load_image_samples(data)
    assert len(samples) == 24 and samples.x.shape[1:] == (16, 16, 3)
    assert samples.y[samples.record == "train_00000"][0] == 1  # raw 0 is malignant through the map
    why = reasons(samples)
    assert why["train_00020"].startswith("label outside the classes")
    assert why["test_images"].startswith("bad array")
    assert sorted(official["val"]) == [f"val_{i:05d}" for i in range(4)]
    assert len(official["test"]) == 5 and all(g.startswith("train_") for g in official["test"])
    assert len(official["train"]) + len(official["test"]) == 20


def test_npz_without_train_arrays_is_a_data_error(tmp_path):
    np.savez(tmp_path / "empty.npz", val_images=np.zeros((2, 8, 8)))
    with pytest.raises(DataError, match="train_images"):
        load_image_samples(config("image_npz", tmp_path / "empty.npz"))


def test_synthetic_images_are_deterministic_and_labelled_by_task(tmp_path):
    data = config("synthetic_images", None, classes=("disc", "ring"), n_per_class=4,
                  synthetic_classes=["disc", "ring", "stripes"])
    data.task.label_map = {"stripes": None}
    first, official = load_image_samples(data)
    second, _ = load_image_samples(data)
    assert official is None and len(first) == 8 and first.excluded == {"stripes": 4}
    np.testing.assert_array_equal(first.x, second.x)
    assert 0 <= first.x.min() and first.x.max() <= 255 and first.x.std() > 10


def test_breastmnist_real_npz():
    path = SHARED / "data" / "images" / "breastmnist" / "breastmnist.npz"
    if not path.is_file():
        pytest.skip("shared BreastMNIST data not available")
    data = config("image_npz", path, classes=("benign_or_normal", "malignant"), image_size=[32, 32])
    data.task.label_map = {"0": "malignant", "1": "benign_or_normal"}
    samples, official = load_image_samples(data)
    assert len(samples) == 546 + 78 and not samples.skipped
    assert samples.class_counts() == {"benign_or_normal": 399 + 57, "malignant": 147 + 21}
    assert {k: len(v) for k, v in official.items()} == {"train": 409, "val": 78, "test": 137}
