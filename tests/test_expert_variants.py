"""bench.expert_variants: every variant trains and is scored per validation record (binary and 4-class)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from conftest import write_tiny_experiment

from bench import expert_variants

TASKS = {
    "binary": ({"classes": ["rest", "A"], "positive": "A", "label_map": {"N": "rest", "O": "rest", "~": "rest"}},
               {"rf", "gb", "rf_record", "rf_record_mean", "rf_record_stats", "rf_raw_labels", "gb_raw_labels"},
               ["val_roc_auc", "val_pr_auc"]),
    "four_classes": ({"classes": ["N", "A", "O", "~"]}, {"rf", "gb", "rf_record", "rf_record_mean", "rf_record_stats"},
                     ["val_cinc_score", "val_cinc_score_weighted", "val_macro_roc_auc"]),
}


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_variants_scored_on_validation_records(tmp_path, kind):
    task, variants, columns = TASKS[kind]
    config_file = write_tiny_experiment(tmp_path, ["expert_rf"])
    raw = yaml.safe_load(config_file.read_text())
    raw["data"]["task"] = task
    config_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "variants.csv"

    table = expert_variants.main(["--config", str(config_file), "--seeds", "0", "1", "--out", str(out)])

    assert set(table["variant"]) == variants
    assert len(table) == 2 * len(variants)
    assert table["val_records"].nunique() == 1 and table["val_records"].iloc[0] >= 4
    for column in columns:
        assert table[column].between(0, 1).all(), column
    pd.testing.assert_frame_equal(pd.read_csv(out), table, check_dtype=False)


def test_variants_option_scores_only_the_named_ones(tmp_path):
    config_file = write_tiny_experiment(tmp_path, ["expert_rf"])

    table = expert_variants.main(["--config", str(config_file), "--seeds", "3", "--variants", "rf_record_mean"])

    assert table["variant"].tolist() == ["rf_record_mean"]
    assert table["seed"].tolist() == [3]


def test_leaf_sizes_score_each_forest(tmp_path):
    config_file = write_tiny_experiment(tmp_path, ["expert_rf"])

    table = expert_variants.main(["--config", str(config_file), "--seeds", "0", "--variants", "rf", "gb",
                                  "--min-samples-leaf", "2", "50"])

    assert table["variant"].tolist() == ["rf", "rf_leaf50", "gb"]    # boosting has no leaf setting
    assert expert_variants.forest(0)[-1].min_samples_leaf == 2
    assert expert_variants.forest(0, 50)[-1].min_samples_leaf == 50


def test_train_fractions_draw_whole_records_per_seed(tmp_path):
    config_file = write_tiny_experiment(tmp_path, ["expert_rf"])

    table = expert_variants.main(["--config", str(config_file), "--seeds", "0", "1", "--variants", "rf",
                                  "--train-fractions", "0.5", "1"])

    assert table["train_fraction"].tolist() == [0.5, 0.5, 1.0, 1.0]
    full = table.loc[table["train_fraction"] == 1, "train_records"]
    half = table.loc[table["train_fraction"] == 0.5, "train_records"]
    assert full.nunique() == 1 and (half < full.iloc[0]).all() and (half >= full.iloc[0] * 0.4).all()
