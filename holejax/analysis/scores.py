"""Agreement between H0 clusters and class labels: purity, inverse purity, ARI, NMI.

Two forms:

* single partitions — :func:`purity`, :func:`inverse_purity`,
  :func:`adjusted_rand`, :func:`normalized_mutual_info` (numpy / scikit-learn);
* every partition of a merge tree at once — :func:`merge_scores` follows the
  single-linkage merges of a batch of clouds in one ``lax.scan`` (vmapped over
  clouds), updating a cluster-by-class count table, and returns purity,
  inverse purity and ARI after each merge. This is what lets a study score
  all ``n - 1`` thresholds of hundreds of clouds in one compiled call.

Definitions (``n_kc`` = samples of class ``c`` in cluster ``k``, ``N`` samples):

* purity = ``sum_k max_c n_kc / N`` (each cluster votes for its majority class);
* inverse purity = ``sum_c max_k n_kc / N`` (each class's best cluster);
* ARI = the Hubert-Arabie adjusted Rand index (scikit-learn's
  ``adjusted_rand_score``); NMI = scikit-learn's ``normalized_mutual_info_score``
  (arithmetic mean normalisation).

Every cluster id, including ``-1`` (the "small/outliers" group), counts as a
cluster.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import as_numeric_array

__all__ = [
    "MergeScores",
    "adjusted_rand",
    "contingency",
    "inverse_purity",
    "merge_scores",
    "normalized_mutual_info",
    "purity",
]


def _pair(labels_pred: Any, labels_true: Any, caller: str) -> tuple[np.ndarray, np.ndarray]:
    if labels_true is None:
        raise ValueError(
            f"{caller} needs labels_true, the class of each sample; got None. "
            "Pass the labels (e.g. acts.label.values) or use a label-free summary such as n_components."
        )
    pred = as_numeric_array(labels_pred, "labels_pred", "a (sample,) array of cluster ids", numeric=False)
    true = as_numeric_array(labels_true, "labels_true", "a (sample,) array of classes", numeric=False)
    for name, arr in (("labels_pred", pred), ("labels_true", true)):
        if arr.ndim != 1:
            raise ValueError(f"{caller}: {name} must be 1-D (sample,); got shape {arr.shape}.")
        if arr.shape[0] == 0:
            raise ValueError(f"{caller}: {name} is empty; pass at least one sample.")
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
            raise TypeError(f"{caller}: {name} must hold integer ids; got dtype {arr.dtype}.")
    if pred.shape != true.shape:
        raise ValueError(
            f"{caller}: labels_pred has {pred.shape[0]} samples but labels_true has {true.shape[0]}; "
            "pass one cluster id and one class per sample."
        )
    return pred, true


def contingency(labels_pred: Any, labels_true: Any) -> np.ndarray:
    """``(cluster, class)`` counts ``n_kc`` (rows and columns in sorted id order).

    Example:
        >>> contingency([0, 0, 1], [1, 1, 1]).tolist()
        [[2], [1]]
    """
    pred, true = _pair(labels_pred, labels_true, "contingency")
    _, k = np.unique(pred, return_inverse=True)
    _, c = np.unique(true, return_inverse=True)
    table = np.zeros((k.max() + 1, c.max() + 1), np.int64)
    np.add.at(table, (k, c), 1)
    return table


def purity(labels_pred: Any, labels_true: Any) -> float:
    """Purity of a clustering: ``sum over clusters of max class count / N``.

    Args:
        labels_pred: ``(sample,)`` int cluster ids.
        labels_true: ``(sample,)`` int classes.

    Returns:
        A float in ``(0, 1]``; 1 when every cluster holds one class (all
        singletons included: read it with :func:`inverse_purity`).

    Example:
        >>> import holejax as hj
        >>> hj.purity([0, 0, 1, 1], [0, 0, 0, 1])
        0.75
    """
    table = contingency(labels_pred, labels_true)
    return float(table.max(axis=1).sum() / table.sum())


def inverse_purity(labels_pred: Any, labels_true: Any) -> float:
    """Inverse purity: ``sum over classes of their largest cluster count / N``.

    Example:
        >>> import holejax as hj
        >>> hj.inverse_purity([0, 1, 2, 3], [0, 0, 1, 1])
        0.5
    """
    table = contingency(labels_pred, labels_true)
    return float(table.max(axis=0).sum() / table.sum())


def adjusted_rand(labels_pred: Any, labels_true: Any) -> float:
    """Adjusted Rand index (scikit-learn's ``adjusted_rand_score``).

    Example:
        >>> adjusted_rand([0, 0, 1, 1], [1, 1, 0, 0])
        1.0
    """
    from sklearn.metrics import adjusted_rand_score

    pred, true = _pair(labels_pred, labels_true, "adjusted_rand")
    return float(adjusted_rand_score(true, pred))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(labels_pred: Any, labels_true: Any) -> float:
    """Normalised mutual information (scikit-learn's, arithmetic normalisation).

    The mutual information is scikit-learn's ``mutual_info_score`` on the
    contingency table (built once here, which is several times faster than
    ``normalized_mutual_info_score`` and gives the same value, with its
    special cases: 1.0 when both sides are one cluster, 0.0 when the mutual
    information is 0).

    Example:
        >>> normalized_mutual_info([0, 0, 1, 1], [1, 1, 0, 0])
        1.0
    """
    from sklearn.metrics import mutual_info_score

    table = contingency(labels_pred, labels_true)
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    mi = mutual_info_score(None, None, contingency=table)
    if mi == 0:
        return 0.0
    h_pred, h_true = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    return float(mi / np.mean([h_true, h_pred]))


# -- all thresholds of a merge tree at once --------------------------------------------
class MergeScores(NamedTuple):
    """Scores of every partition along single-linkage merge trees.

    Entry ``[..., 0]`` is the partition into singletons; entry ``[..., k + 1]``
    the partition after merge ``k`` (row ``k`` of the linkage matrix).

    Attributes:
        purity: ``(batch, sample)`` float64.
        inverse_purity: ``(batch, sample)`` float64.
        ari: ``(batch, sample)`` float64 adjusted Rand index.
    """

    purity: np.ndarray
    inverse_purity: np.ndarray
    ari: np.ndarray


def _merge_scan(Z: jax.Array, onehot: jax.Array) -> tuple[jax.Array, ...]:
    """Per-merge increments for one cloud; ``Z`` (edge, 4) linkage, ``onehot`` (sample, class) int32."""
    n, n_classes = onehot.shape
    table = jnp.concatenate([onehot, jnp.zeros((n - 1, n_classes), jnp.int32)])
    left = Z[:, 0].astype(jnp.int32)
    right = Z[:, 1].astype(jnp.int32)

    def step(carry, k):
        table, best_of_class = carry
        ra, rb = table[left[k]], table[right[k]]
        r = ra + rb
        table = table.at[n + k].set(r)
        best_of_class = jnp.maximum(best_of_class, r)
        out = (
            r.max() - ra.max() - rb.max(),  # change of sum_k max_c n_kc
            best_of_class.sum(),  # sum_c max_k n_kc after the merge
            (ra * rb).sum(),  # new same-cluster same-class pairs
            ra.sum() * rb.sum(),  # new same-cluster pairs
        )
        return (table, best_of_class), out

    _, outs = jax.lax.scan(step, (table, onehot.max(axis=0)), jnp.arange(n - 1))
    return outs


@jax.jit
def _merge_scan_batched(Zs: jax.Array, onehot: jax.Array) -> tuple[jax.Array, ...]:
    return jax.vmap(_merge_scan, in_axes=(0, None))(Zs, onehot)


def _ari_from_pairs(tp: np.ndarray, same_cluster: np.ndarray, same_class: int, n: int) -> np.ndarray:
    """ARI from pair counts, as scikit-learn's pair-confusion formula (float64)."""
    total = n * (n - 1) / 2.0
    tp = tp.astype(np.float64)
    fp = same_cluster.astype(np.float64) - tp
    fn = same_class - tp
    tn = total - tp - fp - fn
    num = 2.0 * (tp * tn - fn * fp)
    den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    with np.errstate(invalid="ignore", divide="ignore"):
        ari = np.where(den != 0, num / np.where(den != 0, den, 1.0), 1.0)
    return np.where((fn == 0) & (fp == 0), 1.0, ari)


def merge_scores(linkages: Any, labels: Any, *, chunk: int | None = None) -> MergeScores:
    """Purity, inverse purity and ARI after every merge of a batch of merge trees.

    Args:
        linkages: ``(batch, edge, 4)`` scipy-compatible linkage matrices of
            clouds over the same ``edge + 1`` samples (as
            ``hj.h0(Ds).linkage``).
        labels: ``(sample,)`` int classes, shared by every cloud.
        chunk: clouds per compiled call (default: all; lower it to bound the
            ``(batch, 2 * sample, class)`` count table in memory).

    Returns:
        :class:`MergeScores` with arrays ``(batch, sample)``: column ``0`` is
        the singleton partition, column ``k + 1`` the partition after merge
        ``k``.

    Example:
        >>> import numpy as np, holejax as hj
        >>> x = np.array([0.0, 0.1, 5.0, 5.2])
        >>> Z = hj.h0(np.abs(x[:, None] - x[None, :])).linkage
        >>> s = merge_scores(Z[None], [0, 0, 1, 1])
        >>> s.purity[0].tolist(), s.inverse_purity[0].tolist(), s.ari[0].round(3).tolist()
        ([1.0, 1.0, 1.0, 0.5], [0.5, 0.75, 1.0, 1.0], [0.0, 0.571, 1.0, 0.0])
    """
    Zs = np.asarray(linkages)
    if Zs.ndim != 3 or Zs.shape[-1] != 4:
        raise ValueError(f"linkages must have shape (batch, edge, 4); got {Zs.shape}.")
    n = Zs.shape[1] + 1
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(
            f"labels must have shape ({n},), one class per sample of the linkage; got {y.shape}."
        )
    _, classes = np.unique(y, return_inverse=True)
    onehot = np.zeros((n, classes.max() + 1 if n else 0), np.int32)
    onehot[np.arange(n), classes] = 1
    batch = Zs.shape[0]
    if n == 1:
        ones = np.ones((batch, 1))
        return MergeScores(ones, ones.copy(), ones.copy())
    chunk = batch if chunk is None else max(1, int(chunk))
    pieces = []
    for start in range(0, batch, chunk):
        part = Zs[start : start + chunk]
        short = chunk - len(part)
        if short:  # pad so every call has one shape
            part = np.concatenate([part, np.repeat(part[-1:], short, axis=0)])
        outs = _merge_scan_batched(jnp.asarray(part, jnp.float32), jnp.asarray(onehot))
        pieces.append([np.asarray(o)[: chunk - short] for o in outs])
    d_pur, inv_sum, d_tp, d_pairs = (np.concatenate([p[i] for p in pieces]) for i in range(4))
    zero = np.zeros((batch, 1), np.int64)
    pur = (n + np.concatenate([zero, np.cumsum(d_pur, axis=1, dtype=np.int64)], axis=1)) / n
    inv0 = np.full((batch, 1), onehot.max(axis=0).sum(), np.int64)
    inv = np.concatenate([inv0, inv_sum.astype(np.int64)], axis=1) / n
    tp = np.concatenate([zero, np.cumsum(d_tp, axis=1, dtype=np.int64)], axis=1)
    pairs = np.concatenate([zero, np.cumsum(d_pairs, axis=1, dtype=np.int64)], axis=1)
    class_sizes = onehot.sum(axis=0).astype(np.int64)
    same_class = int((class_sizes * (class_sizes - 1) // 2).sum())
    return MergeScores(pur, inv, _ari_from_pairs(tp, pairs, same_class, n))
