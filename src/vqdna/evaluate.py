"""The linear probe ("Lin."), the one used by every part of the project.

:func:`linear_probe` fits a linear model on the train split for every candidate of a grid,
chooses the candidate with the best **dev** primary metric and scores it **once** on test, all
with :func:`vqdna.metrics.score`. Three parts of the project call it:

* the benchmark's probe rows (:mod:`vqdna.benchmark.pipeline`): mean-pooled frozen token
  embeddings, the defaults below;
* the bag-of-k-mers reference (:mod:`vqdna.references.kmer`): sparse k-mer frequencies,
  ``warm_start=True``, its own grids, and for regression a choice between two scalings;
* the Grad-CAM analysis (:mod:`vqdna.analysis.gradcam`): bags of codes, duplicate rows merged
  into sample weights, ``scalings=("standard-weighted",)`` so that the fitted weights can be
  folded back onto the raw features.

Models: classification = ``LogisticRegression`` (lbfgs, L2, multinomial for K > 2) over ``C``;
regression = ``Ridge`` over ``alpha``. The grid is always walked from the strongest
regularisation to the weakest (``C`` ascending, ``alpha`` descending); a candidate replaces the
best one only if its dev score is strictly higher, so ties keep the stronger regularisation.
With ``warm_start`` one logistic model is refitted along the grid from the previous solution
(same optimum up to the solver tolerance, several times faster on many features).

Feature scalings (fitted on the train rows only; :func:`fit_scaling`):

* ``"standard"``: scikit-learn's ``StandardScaler`` (dense input: centred and scaled; sparse
  input: scaled only, so that zeros stay zeros); the dtype of the input is kept;
* ``"standard-weighted"``: float64 mean and population standard deviation weighted by
  ``sample_weight`` (1 per row without it); a feature with zero deviation is only centred.
  Its ``mean`` / ``scale`` / ``constant`` let a caller express the model on the raw features;
* ``"none"``: the features as given.

Each is the arithmetic its caller used before the probe was shared, so no number changed when
the three probes became this one.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .metrics import primary_metric, score

__all__ = ["linear_probe", "fit_scaling", "Scaling", "GRIDS", "SCALINGS"]

#: default grid per task kind: C (classification) or alpha (regression)
GRIDS: dict[str, tuple[float, ...]] = {
    "classification": (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    "regression": (1e3, 1e2, 10.0, 1.0, 0.1),
}
SCALINGS = ("standard", "standard-weighted", "none")


@dataclass
class Scaling:
    """A fitted feature scaling; ``transform`` maps any split like the train rows."""

    name: str
    sklearn: object | None = None  # the StandardScaler of "standard"
    mean: np.ndarray | None = None  # "standard-weighted": float64 train mean
    scale: np.ndarray | None = None  # "standard-weighted": sd, 1.0 where the sd is 0
    constant: np.ndarray | None = None  # "standard-weighted": features of zero sd

    def transform(self, X):
        if self.name == "standard":
            return self.sklearn.transform(X)
        if self.name == "standard-weighted":
            return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return X


def fit_scaling(name: str, X_train, sample_weight=None) -> Scaling:
    """Fit the scaling ``name`` (see the module docstring) on the train features."""
    if name == "standard":
        import scipy.sparse as sp
        from sklearn.preprocessing import StandardScaler

        return Scaling(name, sklearn=StandardScaler(with_mean=not sp.issparse(X_train)).fit(X_train))
    if name == "standard-weighted":
        X = np.asarray(X_train, dtype=np.float64)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        mu = (w[:, None] * X).sum(0) / w.sum()
        sd = np.sqrt((w[:, None] * (X - mu) ** 2).sum(0) / w.sum())
        return Scaling(name, mean=mu, scale=np.where(sd > 0, sd, 1.0), constant=~(sd > 0))
    if name == "none":
        return Scaling(name)
    raise ValueError(f"unknown scaling {name!r} (expected one of {', '.join(SCALINGS)})")


def linear_probe(X: Mapping[str, object], y: Mapping[str, object], kind: str, *,
                 grid: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                 scalings: Sequence[str] = ("standard",), sample_weight=None, warm_start: bool = False,
                 max_iter: int = 2000, seed: int | None = None) -> dict:
    """Fit, choose on dev, score once on test (see the module docstring).

    ``X`` / ``y``: ``{"train", "dev", "test"}`` feature matrices (dense or scipy sparse) and
    labels; dev or test may be empty (no dev rows: the first candidate is kept). ``grid``: the
    candidates for every scaling, or ``{scaling: candidates}``; default :data:`GRIDS` of the
    kind. ``scalings`` are tried in order, each with its grid. ``sample_weight`` weighs the
    train rows. ``seed`` is the estimators' ``random_state`` (lbfgs and Ridge's default
    solvers do not use it).

    Returns ``{"metric", "score" (test primary, None without test rows), "test", "dev" (metrics
    of the chosen candidate), "param": {"C"|"alpha": value}, "param_name", "value", "scaling",
    "dev_grid": {"<scaling>:<value>": dev primary}, "candidates": [{"scaling", "value", "dev",
    "n_iter", "converged"}], "model", "scaler", "n_features", "n_train"}``; ``model`` (the
    chosen estimator, on the scaled features) and ``scaler`` (:class:`Scaling`) are objects,
    the rest is plain JSON.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    metric = primary_metric(kind)
    classify = kind == "classification"
    param_name = "C" if classify else "alpha"
    y = {s: np.asarray(v) for s, v in y.items()}
    best = None  # (dev primary, scaling name, value, dev metrics, model copy, scaler)
    dev_grid: dict[str, float] = {}
    candidates = []
    for sc_name in scalings:
        scaler = fit_scaling(sc_name, X["train"], sample_weight)
        Z = {s: scaler.transform(v) for s, v in X.items()}
        values = grid.get(sc_name) if isinstance(grid, Mapping) else grid
        values = sorted(float(v) for v in (values if values is not None else GRIDS[kind]))
        if not classify:
            values = values[::-1]  # strongest regularisation first
        model = LogisticRegression(C=values[0], max_iter=max_iter, warm_start=True, random_state=seed) \
            if classify and warm_start else None
        for v in values:
            if classify:
                if warm_start:
                    model.set_params(C=v)
                else:
                    model = LogisticRegression(C=v, max_iter=max_iter, random_state=seed)
            else:
                model = Ridge(alpha=v, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: recorded below instead
                model.fit(Z["train"], y["train"], sample_weight=sample_weight)
            dev = score(kind, y["dev"], model.predict(Z["dev"])) if len(y["dev"]) else {metric: float("nan")}
            n_iter = int(np.max(model.n_iter_)) if getattr(model, "n_iter_", None) is not None else None
            candidates.append({"scaling": sc_name, "value": v, "dev": dev[metric], "n_iter": n_iter,
                               "converged": None if n_iter is None else n_iter < max_iter})
            dev_grid[f"{sc_name}:{v:g}"] = dev[metric]
            if best is None or dev[metric] > best[0]:  # strict: ties keep the stronger regularisation
                best = (dev[metric], sc_name, v, dev, copy.deepcopy(model), scaler)
    _, sc_name, v, dev, model, scaler = best
    test = score(kind, y["test"], model.predict(scaler.transform(X["test"]))) if len(y["test"]) else {}
    return {"metric": metric, "score": test.get(metric), "test": test, "dev": dev, "param": {param_name: v},
            "param_name": param_name, "value": v, "scaling": sc_name, "dev_grid": dev_grid,
            "candidates": candidates, "model": model, "scaler": scaler,
            "n_features": int(X["train"].shape[1]), "n_train": int(X["train"].shape[0])}
