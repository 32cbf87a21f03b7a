"""Linear probe on bags of codes ("Lin." in the paper) and its Grad-CAM attribution to codes.

Features (:func:`code_features`)
--------------------------------
A tokenized sequence is an ``(n_levels, L)`` array of code indices (one code per nucleotide
per HRQ level). Its feature vector concatenates one block per level; the block of level ``l``
(``K_l`` codes) holds the code counts normalised by the count expected under uniform usage::

    x[k] = K_l * count_l(k) / L        (so the mean of a level's block is 1)

i.e. the code frequency ``count/L`` times ``K_l``. The factor only rescales the features to
order 1 so that one L2 penalty suits every level; it changes no ranking below.

Probe (:func:`fit_probe`)
-------------------------
The project's linear probe (:func:`vqdna.evaluate.linear_probe`): multinomial logistic
regression (scikit-learn, lbfgs, L2 penalty) trained on the train split;
``C`` is chosen on the dev split by MCC from a small grid (ties: the stronger regularisation);
the chosen model is scored once on test (accuracy, macro F1, MCC). Identical (sequence, label)
rows are merged with a sample weight equal to their multiplicity, which leaves the loss, and
so the fit, unchanged. By default the features are standardised (train mean ``mu`` and
standard deviation ``sd``, multiplicity-weighted) before the fit -- lbfgs converges several
times faster and the dev MCC is higher than on the raw features -- and the scaler is folded
back into the weights, so the model is always reported on the raw features::

    logit_c(x) = W[c] . x + b[c],   W[c, k] = W_std[c, k] / sd[k]   (0 for a constant feature),
                                    b[c] = b_std[c] - sum_k W_std[c, k] mu[k] / sd[k].

For two classes scikit-learn keeps one weight vector ``w`` (the log-odds of class 1); it is
written as the equivalent softmax pair ``W = [-w/2, +w/2]``. With an L2 penalty the softmax
weights of a feature sum to (about) zero over the classes, so ``W[c, k] > 0`` means "code k
raises class c above the others".

Grad-CAM (:func:`gradcam_attribution`)
--------------------------------------
Grad-CAM (Selvaraju et al. 2017) weights an activation by the gradient of the class score with
respect to it and keeps the positive part. Here the activations are the code features and the
class score is the logit, so ``d logit_c / d x[k] = W[c, k]`` and, with the activation of code
``k`` for class ``c`` taken as its mean feature over the train sequences of that class::

    xbar[c, k] = mean over train rows i with y_i = c of x_i[k]        (weighted by multiplicity)
    A[c, k]    = ReLU(W[c, k] * xbar[c, k]) = max(0, W[c, k] * xbar[c, k])

Each code is assigned to the class it supports most, ``support[k] = argmax_c A[c, k]`` (ties:
the lowest class id), or ``-1`` ("none") when ``A[:, k]`` is zero for every class (a code that
never occurs in the train set, or whose weights are all <= 0 where it occurs). Everything is
plain numpy, so a test can check it on a hand-made model. This is our reading of the paper's
"labels obtained by Grad-CAM of the linear classifier" (App. B); the paper gives no formula.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..evaluate import linear_probe
from ..metrics import classification_metrics

__all__ = ["level_slices", "code_features", "gradcam_attribution", "support_class", "fit_probe",
           "merge_duplicates", "DEFAULT_CS"]

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0)


def level_slices(vocab_sizes: Sequence[int]) -> list[slice]:
    """Column slice of each level's block in the concatenated feature vector."""
    out, start = [], 0
    for k in vocab_sizes:
        out.append(slice(start, start + int(k)))
        start += int(k)
    return out


def code_features(codes: Sequence[np.ndarray], vocab_sizes: Sequence[int]) -> np.ndarray:
    """``(N, sum K_l)`` float32: per level ``K_l * count(k) / L`` (see the module docstring)."""
    vocab_sizes = [int(k) for k in vocab_sizes]
    sl = level_slices(vocab_sizes)
    X = np.zeros((len(codes), sl[-1].stop if sl else 0), dtype=np.float32)
    for i, c in enumerate(codes):
        c = np.asarray(c).reshape(len(vocab_sizes), -1)
        L = c.shape[1]
        if L == 0:
            continue
        for lev, (k, s) in enumerate(zip(vocab_sizes, sl)):
            X[i, s] = np.bincount(c[lev], minlength=k)[:k] * (k / L)
    return X


def gradcam_attribution(W: np.ndarray, X: np.ndarray, y: np.ndarray, n_classes: int,
                        sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``A[c, k] = max(0, W[c, k] * xbar[c, k])``; returns ``(A, xbar)``, both ``(n_classes, F)``.

    ``xbar[c]`` is the (sample-weighted) mean feature row of the rows of class ``c`` (zeros for
    a class without rows).
    """
    W = np.asarray(W, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if W.shape != (n_classes, X.shape[1]):
        raise ValueError(f"W has shape {W.shape}, expected ({n_classes}, {X.shape[1]})")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    xbar = np.zeros((n_classes, X.shape[1]))
    for c in range(n_classes):
        m = y == c
        if m.any():
            xbar[c] = (w[m, None] * X[m]).sum(0) / w[m].sum()
    return np.maximum(W * xbar, 0.0), xbar


def support_class(A: np.ndarray) -> np.ndarray:
    """Per code (column of ``A``), the class it supports most, or -1 when all attributions are 0."""
    A = np.asarray(A)
    sup = A.argmax(axis=0).astype(np.int64)
    sup[~(A > 0).any(axis=0)] = -1
    return sup


def merge_duplicates(keys: Sequence, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first row of each distinct ``(key, label)`` pair and the pair counts."""
    first: dict = {}
    counts: list[int] = []
    idx: list[int] = []
    for i, (k, lab) in enumerate(zip(keys, np.asarray(y).tolist())):
        j = first.get((k, lab))
        if j is None:
            first[(k, lab)] = len(idx)
            idx.append(i)
            counts.append(1)
        else:
            counts[j] += 1
    return np.asarray(idx, dtype=np.int64), np.asarray(counts, dtype=np.float64)


def _softmax_weights(model, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    W, b = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
    if W.shape[0] == 1 and n_classes == 2:  # binary: log-odds of class 1 -> symmetric softmax pair
        W = np.vstack([-W[0] / 2, W[0] / 2])
        b = np.array([-b[0] / 2, b[0] / 2])
    return W, b


def fit_probe(X_train, y_train, X_dev, y_dev, X_test, y_test, n_classes: int, *,
              sample_weight=None, Cs: Sequence[float] = DEFAULT_CS, seed: int = 0,
              max_iter: int = 300, standardize: bool = True) -> dict:
    """Fit the multinomial logistic regression for each ``C`` (ascending, warm-started), pick
    the best dev MCC, score it on test (the project's probe, :func:`vqdna.evaluate.linear_probe`,
    with the ``"standard-weighted"`` scaling). Returns ``W``, ``b`` (on the raw features), the
    chosen ``C``, the metrics of every split and the dev MCC of every candidate."""
    X_train, X_dev, X_test = (np.asarray(X, dtype=np.float64) for X in (X_train, X_dev, X_test))
    r = linear_probe({"train": X_train, "dev": X_dev, "test": X_test}, {"train": y_train, "dev": y_dev, "test": y_test},
                     "classification", grid=Cs, scalings=("standard-weighted" if standardize else "none",),
                     sample_weight=sample_weight, warm_start=True, max_iter=max_iter, seed=seed)
    model, scaler = r["model"], r["scaler"]
    W_s, b_s = _softmax_weights(model, n_classes)
    if standardize:  # fold the scaler back: the model on the raw features
        W = np.where(scaler.constant, 0.0, W_s / scaler.scale)
        b = b_s - (W_s * (scaler.mean / scaler.scale)).sum(1)
    else:
        W, b = W_s, b_s
    pred_test = model.predict(scaler.transform(X_test)) if len(y_test) else np.zeros(0, int)
    pred_train = model.predict(scaler.transform(X_train))
    cands = [{"C": c["value"], "dev_mcc": c["dev"], "n_iter": c["n_iter"], "converged": c["converged"]}
             for c in r["candidates"]]
    return {"C": r["value"], "W": W, "b": b, "candidates": cands, "standardize": standardize,
            "train": classification_metrics(y_train, pred_train) if sample_weight is None else
            _weighted_accuracy(y_train, pred_train, sample_weight),
            "dev": r["dev"], "test_pred": pred_test, "test": r["test"]}


def _weighted_accuracy(y, pred, w) -> dict:
    w = np.asarray(w, dtype=np.float64)
    return {"accuracy": float((w * (np.asarray(y) == np.asarray(pred))).sum() / w.sum())}
