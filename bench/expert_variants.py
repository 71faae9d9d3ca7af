"""Variants of the expert-feature classifier on validation: can the knowledge side itself get stronger?

For an ECG config (default ``configs/cinc2017_af.yaml``) the 41 expert features of
every training and validation window are computed once, then each variant is
trained on the training windows and scored per record (mean of its window
probabilities) on the validation records, for several seeds: ROC-AUC and PR-AUC
for a binary task, the CinC score (argmax, and with validation-chosen class weights) and macro
ROC-AUC for a multi-class one.

- ``rf``: the shipped ``expert_rf`` (imputation, scaling, random forest) on the task's labels;
- ``rf_raw_labels`` (when the task merges labels): the same forest trained on the records' raw
  labels (CinC: N, A, O, ~), each task class scored by the summed probability of its raw labels;
- ``gb`` / ``gb_raw_labels``: the forest replaced by class-balanced histogram gradient boosting;
- ``rf_record``: the forest on the window features plus the same features of the whole record;
- ``rf_record_mean``: the forest on the window features plus their mean over the record's windows
  (record context that needs only the windows, not the whole signal: the shipped ``expert_rf_record``);
- ``rf_record_stats``: ``rf_record_mean`` plus the standard deviation over the record's windows.

``--min-samples-leaf 2 5 10`` scores every forest variant at each leaf size (``rf_leaf5``, ...;
2 is the shipped one and keeps the plain name). ``--train-fractions 0.6 0.8 1`` trains each on that
share of the training records (whole records, stratified, a new draw per seed): a learning curve
that says what more training data (e.g. refitting on train + validation) is worth.

The test split is not read. Examples (about 10 min each on 2 cores):
    python -m bench.expert_variants --out bench/results/cinc2017_af_expert_variants_val.csv
    python -m bench.expert_variants --config configs/cinc2017_4class.yaml \
        --out bench/results/cinc2017_4class_expert_variants_val.csv
"""

from __future__ import annotations

import argparse
import itertools
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline

from ecgnet.baselines import build_expert_rf
from ecgnet.context import record_means
from ecgnet.dataset import list_records, load_ecg_samples
from ecgnet.features import expert_feature_matrix, extract_features
from ecgnet.preprocess import clean_signal
from ecgnet.sources import RecordRef, read_signal
from pipelines.artifacts import write_csv
from pipelines.config import DataConfig, load_config
from pipelines.metrics import choose_class_weights, multiclass_metrics
from pipelines.samples import SampleSet
from pipelines.splits import assign_splits, monitored_splits, split_samples

SHIPPED_LEAF = inspect.signature(build_expert_rf).parameters["min_samples_leaf"].default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cinc2017_af.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=None, help="score only these variants")
    parser.add_argument("--min-samples-leaf", type=int, nargs="+", default=[SHIPPED_LEAF],
                        help=f"the forests' min_samples_leaf, each value scored (default: expert_rf's {SHIPPED_LEAF})")
    parser.add_argument("--train-fractions", type=float, nargs="+", default=[1.0],
                        help="train on these shares of the training records (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write one row per variant × seed as CSV")
    return parser.parse_args(argv)


def record_features(refs: list[RecordRef], data: DataConfig) -> dict[str, np.ndarray]:
    """The expert features of every whole record, preprocessed as in training, by record id."""
    def one(ref: RecordRef) -> np.ndarray:
        signal, fs = read_signal(ref, data.channel)
        return extract_features(clean_signal(signal, fs, data.preprocess), data.preprocess.fs)
    rows = Parallel(n_jobs=-1, batch_size=16)(delayed(one)(ref) for ref in refs)
    return {ref.record: row for ref, row in zip(refs, rows)}


def per_record(samples: SampleSet, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record: its class (the majority of its windows' labels) and the mean of its windows' probabilities."""
    _, index = np.unique(samples.record, return_inverse=True)
    counts = np.bincount(index)
    labels = np.stack([np.bincount(index, samples.y == k) for k in range(probs.shape[1])], axis=1).argmax(axis=1)
    return labels, np.stack([np.bincount(index, column) for column in probs.T], axis=1) / counts[:, None]


def record_scores(y_true: np.ndarray, probs: np.ndarray, classes: list[str], positive: str | None) -> dict[str, float]:
    """ROC-AUC and PR-AUC of the positive class (binary tasks), else the CinC score by argmax and with the
    per-class decision weights the runs choose on validation (here in-sample: an upper bound), and macro ROC-AUC."""
    if len(classes) == 2:
        k = classes.index(positive)
        return {"val_roc_auc": roc_auc_score(y_true == k, probs[:, k]),
                "val_pr_auc": average_precision_score(y_true == k, probs[:, k])}
    metrics = multiclass_metrics(y_true, probs, classes)
    weighted = multiclass_metrics(y_true, probs, classes, choose_class_weights(y_true, probs, classes))
    return {"val_cinc_score": metrics.get("cinc_score", np.nan),
            "val_cinc_score_weighted": weighted.get("cinc_score", np.nan), "val_macro_roc_auc": metrics["macro_roc_auc"]}


def forest(seed: int, min_samples_leaf: int = SHIPPED_LEAF) -> Pipeline:
    """The shipped ``expert_rf`` without its feature step (it is fed computed features)."""
    return build_expert_rf((1,), 2, fs=1.0, seed=seed, min_samples_leaf=min_samples_leaf)[1:]


def gradient_boosting(seed: int) -> Pipeline:
    """``expert_rf``'s imputation and scaling in front of class-balanced gradient boosting."""
    return forest(seed).set_params(clf=HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05,
                                                                      class_weight="balanced", random_state=seed))


def training_share(splits: dict[str, SampleSet], fraction: float, seed: int) -> np.ndarray:
    """A mask of the training windows of ``fraction`` of the training records (stratified; all when 1)."""
    train = splits["train"]
    if fraction >= 1:
        return np.ones(len(train), bool)
    kept = monitored_splits(splits, 1 - fraction, seed)["train"]
    return np.isin(train.group, np.unique(kept.group))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Score every variant × seed on validation; print and optionally write the table."""
    args = parse_args(argv)
    config = load_config(args.config)
    data, task = config.data, config.data.task
    samples = load_ecg_samples(data)
    splits = split_samples(samples, assign_splits(samples, data.split))
    classes = list(samples.classes)
    refs = [ref for ref in list_records(data)[0].refs if ref.record in set(samples.record)]
    raw_label = {ref.record: ref.label for ref in refs}
    raw_classes = sorted(set(raw_label.values()))
    # raw label -> task class, to sum the raw-label probabilities into the task's classes
    to_task = np.array([[task.label_map.get(raw, raw) == name for name in classes] for raw in raw_classes], float)
    window_x = {name: expert_feature_matrix(splits[name].x, samples.fs) for name in ("train", "val")}
    whole = record_features(refs, data) if not args.variants or "rf_record" in args.variants else {}
    record_x = {name: np.hstack([window_x[name], np.stack([whole[r] for r in splits[name].record])])
                for name in window_x} if whole else {}
    means = {name: record_means(window_x[name], splits[name].record) for name in window_x}
    mean_x = {name: np.hstack([window_x[name], means[name]]) for name in window_x}
    spread = {name: np.sqrt(np.maximum(record_means(window_x[name] ** 2, splits[name].record) - means[name] ** 2, 0))
              for name in window_x}
    stats_x = {name: np.hstack([mean_x[name], spread[name]]) for name in window_x}
    raw_y = np.array([raw_classes.index(raw_label[r]) for r in splits["train"].record])
    task_y, identity = splits["train"].y, np.eye(len(classes))

    variants = {  # name: (model factory, features, training labels, map of its classes to the task's)
        "rf": (forest, window_x, task_y, identity),
        "gb": (gradient_boosting, window_x, task_y, identity),
        "rf_record": (forest, record_x, task_y, identity),
        "rf_record_mean": (forest, mean_x, task_y, identity),
        "rf_record_stats": (forest, stats_x, task_y, identity),
    }
    if len(raw_classes) > len(classes):
        variants.update({"rf_raw_labels": (forest, window_x, raw_y, to_task),
                         "gb_raw_labels": (gradient_boosting, window_x, raw_y, to_task)})
    variants = {name: spec for name, spec in variants.items() if not args.variants or name in args.variants}
    rows = []
    for name, (factory, features, labels, class_map) in variants.items():  # rows: classes seen in training
        for leaf, fraction, seed in itertools.product(args.min_samples_leaf if factory is forest else [None],
                                                      args.train_fractions, args.seeds):
            kept = training_share(splits, fraction, seed)
            model = (factory(seed, leaf) if leaf else factory(seed)).fit(features["train"][kept], labels[kept])
            y_true, probs = per_record(splits["val"], model.predict_proba(features["val"]) @ class_map[model.classes_])
            rows.append({"variant": name if leaf in (None, SHIPPED_LEAF) else f"{name}_leaf{leaf}",
                         "train_fraction": fraction, "seed": seed, "train_records": len(np.unique(
                             splits["train"].record[kept])), "val_records": len(y_true),
                         **record_scores(y_true, probs, classes, task.positive)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    scores = [column for column in table.columns if column.startswith("val_") and column != "val_records"]
    print(table.groupby(["variant", "train_fraction"], sort=False)[scores].agg(["mean", "std"]).round(4))
    if args.out:
        write_csv(args.out, table)
    return table


if __name__ == "__main__":
    main()
