"""Probes: logistic regression, difference of class means, and a small MLP.

All probes standardise features with statistics of their training data (the residual stream has a
few huge outlier dimensions that otherwise dominate), choose their regularisation by
cross-validation on the training data only, and expose `score(X)` = P(true) in [0, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from selflab.errors import SelflabError

PROBE_KINDS = ("logistic", "mean_diff", "mlp")


class Probe(Protocol):
    kind: str

    def fit(self, X: np.ndarray, y: np.ndarray) -> Probe: ...

    def score(self, X: np.ndarray) -> np.ndarray:
        """P(label = 1) per row."""
        ...


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if X.ndim != 2 or len(X) != len(y):
        raise SelflabError(f"probe inputs have shapes {X.shape} and {y.shape}", "give X (n, d) and y (n,)")
    if len(np.unique(y)) < 2:
        raise SelflabError("probe training data holds a single class", "train on data with both labels")
    if not set(np.unique(y)) <= {0, 1}:
        raise SelflabError(f"probe labels must be 0 or 1, got {sorted(set(y.tolist()))}", "map labels to 0/1")
    smaller = int(np.bincount(y).min())
    if smaller < 2:
        # cross-validation needs the smaller class in every fold; one example cannot be split
        raise SelflabError(
            f"probe training data holds only {smaller} example of one class",
            "train on at least two examples of each label (more statements or easier questions)",
        )
    return X, y


def _folds(y: np.ndarray, wanted: int) -> int:
    """At most `wanted` folds, never more than the smaller class has examples."""
    return int(max(2, min(wanted, np.bincount(y).min())))


class _Standardizer:
    def fit(self, X: np.ndarray) -> _Standardizer:
        self.mean = X.mean(axis=0)
        self.std = X.std(axis=0) + 1e-6
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std


@dataclass
class LogisticProbe:
    """L2 logistic regression; C chosen from `Cs` by stratified k-fold CV (log-loss)."""

    Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
    cv: int = 3
    seed: int = 0
    kind: str = "logistic"
    C_: float = field(default=float("nan"), init=False)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticProbe:
        from sklearn.linear_model import LogisticRegressionCV

        X, y = _check_xy(X, y)
        self._std = _Standardizer().fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._clf = LogisticRegressionCV(
                Cs=list(self.Cs),
                cv=_folds(y, self.cv),
                scoring="neg_log_loss",
                solver="liblinear",
                max_iter=300,
                random_state=self.seed,
            ).fit(self._std(X), y)
        self.C_ = float(np.ravel(self._clf.C_)[0])
        return self

    @property
    def direction(self) -> np.ndarray:
        return self._clf.coef_[0] / self._std.std

    def score(self, X: np.ndarray) -> np.ndarray:
        return self._clf.predict_proba(self._std(X))[:, 1]


@dataclass
class MeanDiffProbe:
    """Difference of class means ('mass-mean' probe, Marks & Tegmark): direction mu_true - mu_false
    in standardised space, no fitting of a weight per dimension, so it is hard to overfit. A 1-D
    logistic fit on the projection turns it into a calibrated probability."""

    kind: str = "mean_diff"

    def fit(self, X: np.ndarray, y: np.ndarray) -> MeanDiffProbe:
        from sklearn.linear_model import LogisticRegression

        X, y = _check_xy(X, y)
        self._std = _Standardizer().fit(X)
        Z = self._std(X)
        d = Z[y == 1].mean(axis=0) - Z[y == 0].mean(axis=0)
        norm = np.linalg.norm(d)
        self.direction_ = d / norm if norm > 0 else d
        proj = (Z @ self.direction_)[:, None]
        self._cal = LogisticRegression(C=1.0).fit(proj, y)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        proj = (self._std(X) @ self.direction_)[:, None]
        return self._cal.predict_proba(proj)[:, 1]


@dataclass
class MLPProbe:
    """A one-hidden-layer MLP (non-linear probe), L2 penalty `alpha` chosen by CV. Inputs are first
    reduced by PCA (fit on train) to `pca_dim` dimensions: with a few hundred examples a 576-wide
    input layer only memorises."""

    alphas: tuple[float, ...] = (1e-2, 1.0)
    hidden: int = 64
    pca_dim: int = 64
    cv: int = 3
    seed: int = 0
    max_iter: int = 300
    kind: str = "mlp"
    alpha_: float = field(default=float("nan"), init=False)

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPProbe:
        from sklearn.decomposition import PCA
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.neural_network import MLPClassifier

        X, y = _check_xy(X, y)
        self._std = _Standardizer().fit(X)
        Z = self._std(X)
        k = int(min(self.pca_dim, Z.shape[1], Z.shape[0] - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant features (e.g. layer 0 at a shared '.' token)
            self._pca = PCA(n_components=k, random_state=self.seed).fit(Z)
        P = self._pca.transform(Z)
        base = MLPClassifier(
            hidden_layer_sizes=(self.hidden,),
            max_iter=self.max_iter,
            random_state=self.seed,
            learning_rate_init=1e-3,
        )
        folds = StratifiedKFold(_folds(y, self.cv), shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on tiny data is expected
            search = GridSearchCV(base, {"alpha": list(self.alphas)}, cv=folds, scoring="neg_log_loss").fit(
                P, y
            )
        self._clf = search.best_estimator_
        self.alpha_ = float(search.best_params_["alpha"])
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        return self._clf.predict_proba(self._pca.transform(self._std(X)))[:, 1]


def make_probe(kind: str, seed: int = 0) -> Probe:
    if kind == "logistic":
        return LogisticProbe(seed=seed)
    if kind == "mean_diff":
        return MeanDiffProbe()
    if kind == "mlp":
        return MLPProbe(seed=seed)
    raise SelflabError(f"unknown probe kind {kind!r}", f"choose from {', '.join(PROBE_KINDS)}")
