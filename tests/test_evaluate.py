"""The project's one linear probe (vqdna.evaluate) and one scoring function (vqdna.metrics.score)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vqdna.evaluate import GRIDS, linear_probe
from vqdna.metrics import classification_metrics, regression_metrics, score


def _data(kind, seed=0, n=(200, 80, 80), d=12):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = {s: rng.normal(size=(k, d)) for s, k in zip(("train", "dev", "test"), n)}
    if kind == "classification":
        y = {s: (v @ w + 0.5 * rng.normal(size=len(v)) > 0).astype(int) for s, v in X.items()}
    else:
        y = {s: v @ w + rng.normal(size=len(v)) for s, v in X.items()}
    return X, y


def test_score_is_the_metrics_of_the_kind():
    assert score("classification", [0, 1, 1], [0, 1, 0]) == classification_metrics([0, 1, 1], [0, 1, 0])
    assert score("regression", [0.1, 0.5, 0.2], [0.2, 0.4, 0.1]) == regression_metrics([0.1, 0.5, 0.2],
                                                                                         [0.2, 0.4, 0.1])
    with pytest.raises(ValueError):
        score("ranking", [1], [1])


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_probe_chooses_on_dev_and_scores_test_once(kind):
    X, y = _data(kind)
    r = linear_probe(X, y, kind)
    metric = "mcc" if kind == "classification" else "spearman"
    assert r["metric"] == metric and r["score"] == r["test"][metric] > 0.6
    grid = GRIDS[kind]
    assert [c["value"] for c in r["candidates"]] == sorted(grid, reverse=kind == "regression")  # strongest first
    best = max(c["dev"] for c in r["candidates"])
    first_best = next(c for c in r["candidates"] if c["dev"] == best)  # ties keep the stronger regularisation
    assert r["value"] == first_best["value"] and r["dev"][metric] == best
    assert r["test"] == score(kind, y["test"], r["model"].predict(r["scaler"].transform(X["test"])))


def test_probe_scalings_and_sparse_input():
    X, y = _data("regression", seed=1)
    Xs = {k: sp.csr_matrix(v) for k, v in X.items()}
    r = linear_probe(Xs, y, "regression", scalings=("standard", "none"), grid={"standard": (10.0,), "none": (1.0,)})
    assert set(r["dev_grid"]) == {"standard:10", "none:1"} and r["scaling"] in ("standard", "none")
    assert not r["scaler"].sklearn.with_mean if r["scaling"] == "standard" else True  # sparse: scaled, not centred


def test_weighted_rows_equal_repeated_rows():
    """standard-weighted + sample weights = the same rows repeated (what gradcam's merged duplicates rely on)."""
    X, y = _data("classification", seed=2, n=(60, 40, 40))
    w = np.random.default_rng(3).integers(1, 4, 60)
    rep = np.repeat(np.arange(60), w)
    a = linear_probe(X, y, "classification", scalings=("standard-weighted",), sample_weight=w.astype(float),
                     grid=(0.1,), max_iter=5000)
    b = linear_probe({**X, "train": X["train"][rep]}, {**y, "train": y["train"][rep]}, "classification",
                     scalings=("standard-weighted",), grid=(0.1,), max_iter=5000)
    np.testing.assert_allclose(a["scaler"].mean, b["scaler"].mean)
    np.testing.assert_allclose(a["model"].coef_, b["model"].coef_, rtol=1e-3, atol=1e-4)
    assert a["test"] == b["test"]
