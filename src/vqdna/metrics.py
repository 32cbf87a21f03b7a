"""Evaluation metrics for the fine-tuning tasks (GUE conventions).

* classification: Matthews correlation (primary, as in GUE), macro F1, accuracy;
* regression: Spearman correlation (primary), Pearson correlation, mean squared error.

:func:`score` picks the set by task kind: it is the one scoring function of fine-tuning, the
linear probe (:mod:`vqdna.evaluate`) and the reference rows.

All values are plain Python floats on their natural scale (MCC in -1..1, *not* x100; papers
in the GUE line print MCC x100).

Degenerate inputs (documented policy):

* constant predictions (or constant truth) give MCC ``0.0`` (sklearn's convention);
* a correlation that is undefined because either side is constant is reported as ``0.0``
  instead of ``nan`` ("no rank information" = no better than chance), so that seed means and
  model selection do not break. Fewer than two samples also give ``0.0``.
* macro F1 uses ``zero_division=0`` over the classes present in truth or prediction.

:func:`summarize_seeds` reports the mean and the *sample* standard deviation (``ddof=1``)
over seeds; with a single seed the std is ``0.0``.
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable, Mapping

import numpy as np

__all__ = ["classification_metrics", "regression_metrics", "score", "summarize_seeds", "primary_metric"]


def primary_metric(kind: str) -> str:
    """The metric used for model selection and reporting: ``"mcc"`` or ``"spearman"``."""
    if kind == "classification":
        return "mcc"
    if kind == "regression":
        return "spearman"
    raise ValueError(f"unknown task kind {kind!r} (expected 'classification' or 'regression')")


def _as_class_pred(y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:  # scores / probabilities / logits -> predicted class
        return y_pred.argmax(axis=1)
    return y_pred.reshape(-1)


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    """``{"mcc", "f1_macro", "accuracy"}``. ``y_pred`` is class ids, or a 2-D score array (argmax)."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    y_true = np.asarray(y_true).reshape(-1)
    y_pred = _as_class_pred(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.shape[0]} items, y_pred {y_pred.shape[0]}")
    if y_true.size == 0:
        raise ValueError("empty input")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcc = float(matthews_corrcoef(y_true, y_pred))
        f1 = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    if not math.isfinite(mcc):
        mcc = 0.0
    return {"mcc": mcc, "f1_macro": f1, "accuracy": float(accuracy_score(y_true, y_pred))}


def _finite_or_zero(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else 0.0


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """``{"spearman", "pearson", "mse"}``; undefined correlations are ``0.0`` (see module doc)."""
    from scipy.stats import pearsonr, spearmanr

    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.shape[0]} items, y_pred {y_pred.shape[0]}")
    if y_true.size == 0:
        raise ValueError("empty input")
    mse = float(np.mean((y_true - y_pred) ** 2))
    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return {"spearman": 0.0, "pearson": 0.0, "mse": mse}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp = _finite_or_zero(spearmanr(y_true, y_pred).statistic)
        pe = _finite_or_zero(pearsonr(y_true, y_pred).statistic)
    return {"spearman": sp, "pearson": pe, "mse": mse}


def score(kind: str, y_true, y_pred) -> dict[str, float]:
    """The metrics of a task of ``kind``: :func:`classification_metrics` (``"classification"``)
    or :func:`regression_metrics` (``"regression"``)."""
    if kind == "classification":
        return classification_metrics(y_true, y_pred)
    if kind == "regression":
        return regression_metrics(y_true, y_pred)
    raise ValueError(f"unknown task kind {kind!r} (expected 'classification' or 'regression')")


def summarize_seeds(results: Iterable[Mapping[str, float]]) -> dict[str, dict]:
    """Aggregate per-seed metric dicts into ``{metric: {"mean", "std", "values"}}``.

    ``std`` is the sample standard deviation (``ddof=1``) when there are two or more seeds,
    ``0.0`` for a single seed. Every dict must have the same metric names; non-numeric
    entries are skipped.
    """
    results = list(results)
    if not results:
        raise ValueError("summarize_seeds: no results")
    keys = [k for k, v in results[0].items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
    for i, r in enumerate(results[1:], start=1):
        missing = [k for k in keys if k not in r]
        if missing:
            raise ValueError(f"summarize_seeds: result {i} lacks {', '.join(missing)}")
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in results]
        arr = np.asarray(vals, dtype=np.float64)
        std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        out[k] = {"mean": float(arr.mean()), "std": std, "values": vals}
    return out
