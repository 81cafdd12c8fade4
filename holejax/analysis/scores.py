"""Agreement between H0 clusters and class labels: purity, inverse purity, ARI, NMI.

Two forms:

* single partitions — :func:`purity`, :func:`inverse_purity`,
  :func:`adjusted_rand`, :func:`normalized_mutual_info` (numpy / scikit-learn);
* every partition of a merge tree at once — :func:`merge_scores` follows the
  single-linkage merges of a batch of clouds in one ``lax.scan`` (vmapped over
  clouds), updating a cluster-by-class count table, and returns purity,
  inverse purity, ARI and the numbers of clusters and outliers after each
  merge, optionally with the clusters under a minimum size pooled into one
  outlier cluster. This is what lets ``hj.analyze`` score all ``n - 1``
  thresholds of hundreds of clouds in one compiled call.

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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import adjusted_rand_score, mutual_info_score

from holejax._checks import as_numeric_array
from holejax._executables import stored_jit

__all__ = [
    "MergeScores",
    "adjusted_rand",
    "compile_merge_scores",
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
    the partition after merge ``k`` (row ``k`` of the linkage matrix). With a
    ``min_cluster_size`` ``m > 1`` each partition is scored with its clusters
    of fewer than ``m`` samples pooled into one "small/outliers" cluster (the
    partition :func:`holejax.analysis.group_small_clusters` draws).

    Attributes:
        purity: ``(batch, sample)`` float64.
        inverse_purity: ``(batch, sample)`` float64.
        ari: ``(batch, sample)`` float64 adjusted Rand index.
        n_clusters: ``(batch, sample)`` int64 clusters of at least ``m`` samples.
        n_outliers: ``(batch, sample)`` int64 samples in smaller clusters.
    """

    purity: np.ndarray
    inverse_purity: np.ndarray
    ari: np.ndarray
    n_clusters: np.ndarray
    n_outliers: np.ndarray


def _pairs(v: jax.Array) -> jax.Array:
    """``sum(v * (v - 1) / 2)``: pairs within each count of ``v``."""
    return (v * (v - 1) // 2).sum()


def _merge_scan(Z: jax.Array, onehot: jax.Array, min_size: jax.Array) -> tuple[jax.Array, ...]:
    """Per-merge increments for one cloud.

    ``Z`` (edge, 4) linkage, ``onehot`` (sample, class) int32, ``min_size``
    the smallest cluster that is not an outlier (int32 scalar). The carry is
    the class counts of every merge-tree node, the best count of each class
    over the big clusters, and the class counts of the outlier pool. Every
    output is an increment bounded by ``n * max(n, min_size) / 4``, so int32
    holds it; the host sums them in int64.
    """
    n, n_classes = onehot.shape
    table = jnp.concatenate([onehot, jnp.zeros((n - 1, n_classes), jnp.int32)])
    left = Z[:, 0].astype(jnp.int32)
    right = Z[:, 1].astype(jnp.int32)
    single_big = min_size <= 1
    best_big = jnp.where(single_big, onehot.max(axis=0), 0)
    pool = jnp.where(single_big, 0, onehot.sum(axis=0))

    def step(carry, k):
        table, best_big, pool = carry
        ra, rb = table[left[k]], table[right[k]]
        r = ra + rb
        sa, sb = ra.sum(), rb.sum()
        big_a, big_b, big = sa >= min_size, sb >= min_size, sa + sb >= min_size
        table = table.at[n + k].set(r)
        best_big = jnp.where(big, jnp.maximum(best_big, r), best_big)
        # small parts of a big result leave the outlier pool, one after the other
        out_a = big & ~big_a
        out_b = big & ~big_b
        pool_a = jnp.where(out_a, pool - ra, pool)
        pool_b = jnp.where(out_b, pool_a - rb, pool_a)
        d_pool_tp = jnp.where(out_a, _pairs(-ra) - (pool * ra).sum(), 0) + jnp.where(
            out_b, _pairs(-rb) - (pool_a * rb).sum(), 0
        )
        size = pool.sum()
        d_pool_pairs = jnp.where(out_a, sa * (sa + 1) // 2 - size * sa, 0) + jnp.where(
            out_b, sb * (sb + 1) // 2 - (size - jnp.where(out_a, sa, 0)) * sb, 0
        )
        # the big result replaces its big parts: new same-cluster (same-class) pairs
        d_tp = jnp.where(
            big, (ra * rb).sum() + jnp.where(big_a, 0, _pairs(ra)) + jnp.where(big_b, 0, _pairs(rb)), 0
        )
        d_pairs = jnp.where(
            big, sa * sb + jnp.where(big_a, 0, sa * (sa - 1) // 2) + jnp.where(big_b, 0, sb * (sb - 1) // 2), 0
        )
        d_max = jnp.where(big, r.max() - jnp.where(big_a, ra.max(), 0) - jnp.where(big_b, rb.max(), 0), 0)
        d_clusters = jnp.where(big, 1 - big_a.astype(jnp.int32) - big_b.astype(jnp.int32), 0)
        out = (
            d_max,  # change of sum over big clusters of max_c n_kc
            pool_b.max(),  # the outlier pool's largest class
            jnp.maximum(best_big, pool_b).sum(),  # sum_c max_k n_kc, the pool one of the k
            d_tp + d_pool_tp,  # change of same-cluster same-class pairs
            d_pairs + d_pool_pairs,  # change of same-cluster pairs
            d_clusters,  # change of the number of big clusters
            pool_b.sum(),  # outliers
        )
        return (table, best_big, pool_b), out

    _, outs = jax.lax.scan(step, (table, best_big, pool), jnp.arange(n - 1))
    return outs


@stored_jit
def _merge_scan_batched(Zs: jax.Array, onehot: jax.Array, min_size: jax.Array) -> tuple[jax.Array, ...]:
    return jax.vmap(_merge_scan, in_axes=(0, None, None))(Zs, onehot, min_size)


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


def compile_merge_scores(batch: int, n: int, n_classes: int, chunk: int | None = None) -> None:
    """Build the compiled program of ``merge_scores`` for ``batch`` trees of ``n`` samples and ``n_classes`` classes.

    Nothing is scored: the program is compiled (or loaded from holejax's
    store of executables), so that a later :func:`merge_scores` call with
    these shapes runs it at once. :func:`holejax.analyze` builds it on a host
    thread while the trees are computed.

    Example:
        >>> compile_merge_scores(batch=4, n=5, n_classes=2)
    """
    if n < 2 or batch < 1:
        return  # merge_scores compiles nothing for these
    chunk = batch if chunk is None else max(1, int(chunk))
    _merge_scan_batched.compiled(
        jax.ShapeDtypeStruct((chunk, n - 1, 4), np.float32),
        jax.ShapeDtypeStruct((n, n_classes), np.int32),
        jax.ShapeDtypeStruct((), np.int32),
    )


def merge_scores(linkages: Any, labels: Any, *, min_cluster_size: int = 1, chunk: int | None = None) -> MergeScores:
    """Purity, inverse purity, ARI and cluster counts after every merge of a batch of merge trees.

    Args:
        linkages: ``(batch, edge, 4)`` scipy-compatible linkage matrices of
            clouds over the same ``edge + 1`` samples (as
            ``hj.h0(Ds).linkage``).
        labels: ``(sample,)`` int classes, shared by every cloud.
        min_cluster_size: clusters with fewer samples are pooled into one
            "small/outliers" cluster before scoring (1, the default, scores
            every cluster as it is, singletons included).
        chunk: clouds per compiled call (default: all; lower it to bound the
            ``(batch, 2 * sample, class)`` count table in memory).

    Returns:
        :class:`MergeScores` with arrays ``(batch, sample)``: column ``0`` is
        the singleton partition, column ``k + 1`` the partition after merge
        ``k``.

    Example:
        >>> import numpy as np, holejax as hj
        >>> x = np.array([0.0, 0.1, 5.0, 5.2, 9.0])
        >>> Z = hj.h0(np.abs(x[:, None] - x[None, :])).linkage
        >>> s = merge_scores(Z[None], [0, 0, 1, 1, 1])
        >>> s.purity[0].tolist(), s.ari[0].round(3).tolist()
        ([1.0, 1.0, 1.0, 1.0, 0.6], [0.0, 0.286, 0.545, 1.0, 0.0])
        >>> g = merge_scores(Z[None], [0, 0, 1, 1, 1], min_cluster_size=2)
        >>> g.purity[0].tolist(), g.n_clusters[0].tolist(), g.n_outliers[0].tolist()
        ([0.6, 1.0, 1.0, 1.0, 0.6], [0, 1, 2, 2, 1], [5, 3, 1, 0, 0])
    """
    Zs = np.asarray(linkages)
    if Zs.ndim != 3 or Zs.shape[-1] != 4:
        raise ValueError(f"linkages must have shape (batch, edge, 4); got {Zs.shape}.")
    if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, (int, np.integer)) or min_cluster_size < 1:
        raise ValueError(f"min_cluster_size must be an int >= 1; got {min_cluster_size!r}.")
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
    m = int(min_cluster_size)
    if n == 1:
        ones = np.ones((batch, 1))
        big = np.full((batch, 1), int(m <= 1), np.int64)
        return MergeScores(ones, ones.copy(), ones.copy(), big, 1 - big)
    chunk = batch if chunk is None else max(1, int(chunk))
    pieces = []
    for start in range(0, batch, chunk):
        part = Zs[start : start + chunk]
        short = chunk - len(part)
        if short:  # pad so every call has one shape
            part = np.concatenate([part, np.repeat(part[-1:], short, axis=0)])
        # host-side casts: a device cast would compile a conversion program per dtype
        outs = _merge_scan_batched(np.asarray(part, np.float32), np.asarray(onehot), np.int32(m))
        pieces.append([np.asarray(o, np.int64)[: chunk - short] for o in outs])
    d_max, pool_max, inv_sum, d_tp, d_pairs, d_clusters, outliers = (
        np.concatenate([p[i] for p in pieces]) for i in range(7)
    )
    class_sizes = onehot.sum(axis=0).astype(np.int64)
    same_class = int((class_sizes * (class_sizes - 1) // 2).sum())
    if m <= 1:  # singletons are clusters
        start_values = (n, 0, int(onehot.max(axis=0).sum()), 0, 0, n, 0)
    else:  # every sample is an outlier
        start_values = (0, int(class_sizes.max()), n, same_class, n * (n - 1) // 2, 0, n)

    def with_start(values: np.ndarray, first: int, cumulative: bool) -> np.ndarray:
        values = np.cumsum(values, axis=1) + first if cumulative else values
        return np.concatenate([np.full((batch, 1), first, np.int64), values], axis=1)

    s_max, s_pool, s_inv, s_tp, s_pairs, s_clusters, s_out = (
        with_start(v, first, cumulative)
        for v, first, cumulative in zip(
            (d_max, pool_max, inv_sum, d_tp, d_pairs, d_clusters, outliers),
            start_values,
            (True, False, False, True, True, True, False),
        )
    )
    return MergeScores(
        (s_max + s_pool) / n, s_inv / n, _ari_from_pairs(s_tp, s_pairs, same_class, n), s_clusters, s_out
    )
