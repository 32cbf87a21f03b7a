"""Metrics agree with sklearn / scipy and handle degenerate inputs."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from vqdna.metrics import classification_metrics, primary_metric, regression_metrics, summarize_seeds


@pytest.mark.parametrize("k", [2, 3, 5])
def test_classification_matches_sklearn(k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, k, 300))
    m = classification_metrics(y, p)
    assert set(m) == {"mcc", "f1_macro", "accuracy"}
    assert all(type(v) is float for v in m.values())
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y, p))
    assert m["f1_macro"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))


def test_classification_scores_argmax():
    y = np.array([0, 1, 2, 1])
    scores = np.array([[3, 1, 0], [0, 2, 1], [0, 0, 5], [1, 0, 0]], dtype=float)
    assert classification_metrics(y, scores) == classification_metrics(y, [0, 1, 2, 0])


def test_constant_prediction_gives_mcc_zero():
    m = classification_metrics([0, 1, 1, 0, 1], [1, 1, 1, 1, 1])
    assert m["mcc"] == 0.0
    assert m["accuracy"] == pytest.approx(0.6)
    assert classification_metrics([1, 1, 1], [1, 1, 1])["mcc"] == 0.0


def test_regression_matches_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    p = y + rng.normal(size=200)
    m = regression_metrics(y, p)
    assert set(m) == {"spearman", "pearson", "mse"}
    assert all(type(v) is float for v in m.values())
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic)
    assert m["pearson"] == pytest.approx(pearsonr(y, p).statistic)
    assert m["mse"] == pytest.approx(np.mean((y - p) ** 2))


def test_regression_constant_prediction_gives_zero_correlation():
    m = regression_metrics([0.1, 0.5, 0.9], [0.3, 0.3, 0.3])
    assert m["spearman"] == 0.0 and m["pearson"] == 0.0
    assert m["mse"] == pytest.approx(np.mean(np.square([0.2, 0.2, 0.6])))
    assert regression_metrics([1.0], [2.0])["spearman"] == 0.0


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError):
        regression_metrics([0.0, 1.0], [0.0])


def test_summarize_seeds_sample_std():
    runs = [{"mcc": 0.5, "accuracy": 0.7}, {"mcc": 0.6, "accuracy": 0.8}, {"mcc": 0.7, "accuracy": 0.9}]
    s = summarize_seeds(runs)
    assert s["mcc"]["mean"] == pytest.approx(0.6)
    assert s["mcc"]["std"] == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1))
    assert s["mcc"]["values"] == [0.5, 0.6, 0.7]
    one = summarize_seeds([{"spearman": 0.3}])
    assert one["spearman"] == {"mean": 0.3, "std": 0.0, "values": [0.3]}
    with pytest.raises(ValueError):
        summarize_seeds([])
    with pytest.raises(ValueError):
        summarize_seeds([{"mcc": 0.1}, {"f1_macro": 0.2}])


def test_primary_metric():
    assert primary_metric("classification") == "mcc"
    assert primary_metric("regression") == "spearman"
    with pytest.raises(ValueError):
        primary_metric("ranking")
