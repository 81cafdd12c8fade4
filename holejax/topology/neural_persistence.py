"""Neural persistence of weight matrices (Rieck et al.) and its caveats (Girrbach et al.).

A fully connected layer with weight matrix ``W`` (n x m) is a complete
bipartite graph; after scaling every weight of the network to ``|w| / max|w|``
(the global maximum over the chosen matrices) the edge weights lie in
``[0, 1]``. The zero-dimensional persistent homology of the filtration by
``1 - w`` (heaviest edges first) pairs each vertex but one with an edge of the
graph's *maximum spanning tree*, with persistence ``1 - w``; the one
component that never dies is paired at persistence 1 (the filtration ends at
1). Hence, following Girrbach et al. (Definition 2.4), which writes down what
the reference implementation of Rieck et al. computes:

* ``NP_p(W) = (1 + sum over MST edges of (1 - w)**p) ** (1/p)``, normalised
  by ``(n + m - 1) ** (1/p)`` (Rieck et al., Theorem 1); the network's neural
  persistence is the mean of the normalised layer values. With per-matrix
  scaling the normalised value lies in ``[0, 1]``; with the global scaling a
  layer whose weights are all far below the network's maximum can slightly
  exceed 1 (at most ``((n + m) / (n + m - 1)) ** (1/p)``);
* Girrbach et al. (Theorem 2.5) prove ``L <= NP_p(W) <= U`` with ``L`` and
  ``U`` built from the row and column maxima. :class:`LayerPersistence`
  reports the paper's ``U`` for ``W`` as given (rows are the set ``A``) and,
  as ``upper_tight``, ``min(U(W), U(W.T))``, also a valid bound and
  independent of whether a framework stores ``(out, in)`` (PyTorch) or
  ``(in, out)`` (Flax) matrices;
* the caveat: across training, neural persistence follows the variance of
  the scaled weights ``|w| / max|w|`` (:func:`weight_variance`,
  :func:`np_variance_trend`; Girrbach et al. report a median Pearson
  correlation of about -0.98).

Weights arrive as plain mappings ``{name: array}``, nested or flat: a PyTorch
``model.state_dict()`` or a Flax parameter tree (``variables["params"]``)
works as it is; values are converted with ``np.asarray``. holejax never
imports torch or flax here.

The maximum spanning tree is one dense Prim in JAX, :func:`max_spanning_tree_edges`
(``jit`` and ``vmap``-able over stacks of equally shaped matrices, e.g. the
checkpoints of one layer); the per-network functions run it in float64 on
matrices padded to power-of-two shapes, so a handful of compilations serve
every layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from holejax._checks import close_matches
from holejax._executables import stored_jit

__all__ = [
    "LayerPersistence",
    "NetworkPersistence",
    "NPBounds",
    "NPVarianceTrend",
    "weight_matrices",
    "max_spanning_tree_edges",
    "max_spanning_tree_weights",
    "neural_persistence_bounds",
    "layer_neural_persistence",
    "neural_persistence",
    "weight_variance",
    "np_variance_trend",
]


# ----------------------------------------------------------------------------- inputs


def _to_numpy(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (RuntimeError, TypeError) as err:  # e.g. a torch tensor that requires grad
        raise TypeError(
            f"weights[{name!r}] could not be converted to a numpy array ({err}). "
            "Pass model.state_dict() (detached tensors) or call .detach().cpu() first."
        ) from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"weights[{name!r}] must be numeric; got dtype {arr.dtype}.")
    return arr


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def weight_matrices(weights: Any, *, include: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The 2-D weight matrices of a parameter mapping, as float64 numpy arrays.

    Args:
        weights: a mapping ``{name: array}``, possibly nested (Flax
            ``{"params": {"Dense_0": {"kernel": ...}}}`` becomes
            ``"params.Dense_0.kernel"``); a PyTorch ``state_dict()`` works as is.
            A single 2-D array is treated as ``{"W": array}``.
        include: names to use, in order. Default: every 2-D entry (biases and
            convolution kernels are skipped), in mapping order.

    Returns:
        ``{name: (n, m) array}`` in order.

    Raises:
        KeyError: an ``include`` name is missing (close names are suggested).
        ValueError: a chosen entry is not 2-D, is empty or holds NaN/Inf; no
            2-D entries at all.

    Example:
        >>> tree = {"params": {"Dense_0": {"kernel": np.ones((3, 2)), "bias": np.zeros(2)}}}
        >>> {k: v.shape for k, v in weight_matrices(tree).items()}
        {'params.Dense_0.kernel': (3, 2)}
    """
    if isinstance(weights, Mapping):
        flat = _flatten(weights)
    elif hasattr(weights, "shape"):
        flat = {"W": weights}
    else:
        raise TypeError(
            "weights must be a mapping {name: array} (a PyTorch state_dict, a Flax parameter tree) "
            f"or one 2-D array; got {type(weights).__name__}."
        )
    if include is None:
        chosen = {}
        for name, value in flat.items():
            arr = _to_numpy(value, name)
            if arr.ndim == 2:
                chosen[name] = arr
        if not chosen:
            shapes = {k: tuple(np.shape(v)) for k, v in flat.items()}
            raise ValueError(
                f"weights hold no 2-D matrices (shapes: {shapes}). Neural persistence is defined for "
                "fully connected layers; reshape convolution kernels yourself, e.g. W.reshape(out, -1)."
            )
    else:
        chosen = {}
        for name in include:
            if name not in flat:
                hint = close_matches(name, flat)
                raise KeyError(
                    f"{name!r} is not in weights" + (f"; did you mean {hint[0]!r}?" if hint else f"; it holds {list(flat)}.")
                )
            arr = _to_numpy(flat[name], name)
            if arr.ndim != 2:
                raise ValueError(
                    f"weights[{name!r}] has shape {arr.shape}; neural persistence needs a 2-D "
                    "(n, m) matrix. Leave biases out, and reshape convolution kernels, e.g. W.reshape(out, -1)."
                )
            chosen[name] = arr
    for name, arr in chosen.items():
        if arr.size == 0:
            raise ValueError(f"weights[{name!r}] is empty (shape {arr.shape}).")
        if not np.isfinite(arr).all():
            raise ValueError(f"weights[{name!r}] holds NaN or Inf; fix the checkpoint before measuring it.")
    return {k: v.astype(np.float64) for k, v in chosen.items()}


def _as_matrix(W: Any, argument: str = "W") -> np.ndarray:
    arr = _to_numpy(W, argument)
    if arr.ndim != 2:
        raise ValueError(
            f"{argument} must be a 2-D (n, m) weight matrix; got shape {arr.shape}. "
            "Reshape convolution kernels, e.g. W.reshape(out, -1)."
        )
    if arr.size == 0:
        raise ValueError(f"{argument} is empty (shape {arr.shape}).")
    if not np.isfinite(arr).all():
        raise ValueError(f"{argument} holds NaN or Inf.")
    return arr.astype(np.float64)


# ----------------------------------------------------------------------------- kernels


@stored_jit
def max_spanning_tree_edges(W: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Edges of the maximum spanning tree of the complete bipartite graph of ``W``.

    Rows and columns are the two vertex sets, ``W[i, j]`` the weight of edge
    ``(i, j)``. Dense Prim from row 0: ``n + m - 1`` steps of O(n + m) each.

    Args:
        W: ``(n, m)`` weights (any real values).

    Returns:
        ``(rows (n + m - 1,), cols (n + m - 1,))`` int indices, in the order
        the tree grew. Traceable; ``jax.vmap`` it over equally shaped matrices.

    Example:
        >>> rows, cols = max_spanning_tree_edges(np.array([[0.9, 0.1], [0.2, 0.5]]))
        >>> sorted(zip(np.asarray(rows).tolist(), np.asarray(cols).tolist()))
        [(0, 0), (1, 0), (1, 1)]
    """
    n, m = W.shape
    neg = jnp.array(-jnp.inf, W.dtype)

    def step(k, state):
        in_row, in_col, best_row, row_from, best_col, col_from, rows, cols = state
        row_score = jnp.where(in_row, neg, best_row)
        col_score = jnp.where(in_col, neg, best_col)
        i, j = jnp.argmax(row_score).astype(jnp.int32), jnp.argmax(col_score).astype(jnp.int32)
        take_col = col_score[j] >= row_score[i]
        rows = rows.at[k].set(jnp.where(take_col, col_from[j], i))
        cols = cols.at[k].set(jnp.where(take_col, j, row_from[i]))
        in_col = in_col.at[j].set(in_col[j] | take_col)
        in_row = in_row.at[i].set(in_row[i] | ~take_col)
        # a new column j offers W[:, j] to the rows; a new row i offers W[i, :] to the columns
        better_row = take_col & (W[:, j] > best_row)
        best_row = jnp.where(better_row, W[:, j], best_row)
        row_from = jnp.where(better_row, j, row_from)
        better_col = ~take_col & (W[i, :] > best_col)
        best_col = jnp.where(better_col, W[i, :], best_col)
        col_from = jnp.where(better_col, i, col_from)
        return in_row, in_col, best_row, row_from, best_col, col_from, rows, cols

    init = (
        jnp.zeros(n, bool).at[0].set(True),
        jnp.zeros(m, bool),
        jnp.full(n, neg),
        jnp.zeros(n, jnp.int32),
        W[0, :],
        jnp.zeros(m, jnp.int32),
        jnp.zeros(n + m - 1, jnp.int32),
        jnp.zeros(n + m - 1, jnp.int32),
    )
    out = jax.lax.fori_loop(0, n + m - 1, step, init)
    return out[6], out[7]


@stored_jit
def max_spanning_tree_weights(W: jax.Array) -> jax.Array:
    """Edge weights of the maximum spanning tree of the complete bipartite graph of ``W``.

    The multiset of weights is the same for every maximum spanning tree; see
    :func:`max_spanning_tree_edges` for the tree itself.

    Args:
        W: ``(n, m)`` weights.

    Returns:
        ``(n + m - 1,)`` weights in the order the tree grew. Traceable.

    Example:
        >>> W = np.array([[0.9, 0.1], [0.2, 0.5]])
        >>> sorted(np.round(np.asarray(max_spanning_tree_weights(W), dtype=float), 3).tolist())
        [0.2, 0.5, 0.9]
    """
    rows, cols = max_spanning_tree_edges(W)
    return W[rows, cols]


class NPBounds(NamedTuple):
    """Girrbach et al.'s bounds on ``NP_p`` (Theorem 2.5).

    Attributes:
        lower: ``L``.
        upper: ``U`` as the paper defines it, rows of ``W`` being the set ``A``.
        upper_tight: ``min(U(W), U(W.T))``; both are bounds, so their minimum is one.
    """

    lower: float
    upper: float
    upper_tight: float


def neural_persistence_bounds(W: Any, p: float = 2.0) -> NPBounds:
    """The bounds ``L`` and ``U`` of Girrbach et al. (Theorem 2.5) for a matrix in ``[0, 1]``.

    With ``Phi_b = (1 - max_a W[a, b])**p`` (columns), ``Psi_a = (1 - max_b W[a, b])**p``
    (rows) and ``B'`` the columns that are no row's arg-max:
    ``L = (sum Phi + sum Psi)**(1/p)`` and
    ``U = (|B \\ B'| + sum_{b in B'} Phi_b + sum Psi)**(1/p)``. They bracket
    ``NP_p(W) = (1 + sum over MST edges of (1 - w)**p)**(1/p)``.

    Args:
        W: ``(n, m)`` scaled weights in ``[0, 1]``.
        p: exponent, ``>= 1``.

    Returns:
        :class:`NPBounds` ``(lower, upper, upper_tight)``.

    Example:
        >>> neural_persistence_bounds(np.array([[1.0, 0.0], [0.0, 1.0]]), p=1)
        NPBounds(lower=0.0, upper=2.0, upper_tight=2.0)
    """
    arr = _as_matrix(W)
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"W must hold scaled weights in [0, 1]; got values in [{arr.min():.3g}, {arr.max():.3g}]. "
            "Scale with |W| / max|W| first."
        )
    p = _check_p(p)
    phi = (1 - arr.max(axis=0)) ** p  # per column
    psi = (1 - arr.max(axis=1)) ** p  # per row
    lower = (phi.sum() + psi.sum()) ** (1 / p)
    upper = _upper_bound(arr, phi, psi, p)
    return NPBounds(float(lower), float(upper), float(min(upper, _upper_bound(arr.T, psi, phi, p))))


def _upper_bound(M: np.ndarray, phi_cols: np.ndarray, psi_rows: np.ndarray, p: float) -> float:
    """Girrbach's ``U`` with the rows of ``M`` as the set ``A``."""
    hit = np.zeros(M.shape[1], bool)
    hit[M.argmax(axis=1)] = True  # columns that are some row's arg-max: B \ B'
    return float((hit.sum() + phi_cols[~hit].sum() + psi_rows.sum()) ** (1 / p))


def _check_p(p: float) -> float:
    p = float(p)
    if not (math.isfinite(p) and p >= 1):
        raise ValueError(f"p must be a finite number >= 1; got {p}.")
    return p


# ----------------------------------------------------------------------------- results


class LayerPersistence(NamedTuple):
    """Neural persistence of one weight matrix.

    Attributes:
        name: the matrix's name in the parameter mapping.
        shape: ``(n, m)``.
        np: ``NP_p = (1 + sum over MST edges of (1 - w)**p)**(1/p)`` (Girrbach
            et al., Definition 2.4: the essential class counts at persistence 1).
        normalized: ``np / (n + m - 1)**(1/p)`` (the normalisation of Rieck et al.).
        lower: Girrbach's ``L``; ``lower <= np``.
        upper: Girrbach's ``U`` for the matrix as stored; ``np <= upper``.
        upper_tight: ``min(U(W), U(W.T))``, the tighter of the two valid bounds.
        variance: variance of the scaled weights ``|w| / scale`` of this matrix.
    """

    name: str
    shape: tuple[int, int]
    np: float
    normalized: float
    lower: float
    upper: float
    upper_tight: float
    variance: float


class NetworkPersistence(NamedTuple):
    """Neural persistence of a network.

    Attributes:
        layers: one :class:`LayerPersistence` per weight matrix, in order.
        mean_normalized: the network's neural persistence, the mean of the
            layers' normalised values (Rieck et al.).
        scale: the global ``max |w|`` the weights were divided by.
        variance: variance of all chosen weights together, scaled to
            ``[0, 1]`` by ``|w| / scale`` (the baseline of Girrbach et al.).
        p: the exponent.
    """

    layers: tuple[LayerPersistence, ...]
    mean_normalized: float
    scale: float
    variance: float
    p: float

    def to_xarray(self):
        """``xarray.Dataset`` over ``layer`` with np, normalized, lower, upper, upper_tight, variance."""
        fields = ["np", "normalized", "lower", "upper", "upper_tight", "variance"]
        data = {f: (("layer",), np.array([getattr(lay, f) for lay in self.layers])) for f in fields}
        return xr.Dataset(
            data,
            coords={"layer": [lay.name for lay in self.layers]},
            attrs={"mean_normalized": self.mean_normalized, "scale": self.scale,
                   "variance": self.variance, "p": self.p},
        )


def layer_neural_persistence(W: Any, p: float = 2.0, *, scale: float | None = None, name: str = "W") -> LayerPersistence:
    """Neural persistence of one weight matrix.

    Args:
        W: ``(n, m)`` raw weights (any orientation; ``np`` is symmetric in it).
        p: exponent, ``>= 1`` (Rieck et al. and Girrbach et al. use 2).
        scale: divide ``|W|`` by this; default ``max |W|`` of this matrix. Pass
            the network's global maximum to reproduce :func:`neural_persistence`.
        name: label stored in the result.

    Returns:
        :class:`LayerPersistence`.

    Example:
        >>> lp = layer_neural_persistence(np.eye(2))  # tree 1, 1, 0 -> (1 + 0 + 0 + 1) ** 0.5
        >>> round(lp.np, 4), round(lp.normalized, 4)
        (1.4142, 0.8165)
    """
    raw = _as_matrix(W, name)
    p = _check_p(p)
    top = float(np.abs(raw).max())
    scale = top if scale is None else float(scale)
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be a positive finite number; got {scale} (an all-zero matrix has no scale).")
    if top > scale * (1 + 1e-12):
        raise ValueError(f"scale={scale} is below max|W|={top} of {name!r}; the scaled weights would exceed 1.")
    scaled = np.minimum(np.abs(raw) / scale, 1.0)
    n, m = raw.shape
    total = _tree_persistence(scaled, p)
    value = (1.0 + total) ** (1 / p)
    bounds = neural_persistence_bounds(scaled, p)
    return LayerPersistence(
        name, (n, m), value, value / (n + m - 1) ** (1 / p), *bounds, float(scaled.var())
    )


def _padded_size(size: int) -> int:
    """The next power of two, at least 16: one compiled Prim serves many matrix shapes."""
    return max(16, 1 << (size - 1).bit_length())


def _tree_persistence(scaled: np.ndarray, p: float) -> float:
    """``sum over maximum-spanning-tree edges of (1 - w)**p`` for weights in ``[0, 1]``.

    The matrix is padded with zero rows and columns to :func:`_padded_size`.
    A padded vertex has only weight-0 edges, so Kruskal (heaviest first)
    meets them after every positive edge: the padded tree holds the original
    tree's weights plus one 0 per padded vertex, each adding ``1**p = 1``,
    which is subtracted again.
    """
    n, m = scaled.shape
    padded = np.zeros((_padded_size(n), _padded_size(m)))
    padded[:n, :m] = scaled
    with jax.enable_x64(True):  # the tree of the float64 weights, not of their float32 rounding
        rows, cols = (np.asarray(x) for x in max_spanning_tree_edges(jnp.asarray(padded, jnp.float64)))
    extra = padded.shape[0] - n + padded.shape[1] - m
    return max(float(np.sum((1.0 - padded[rows, cols]) ** p)) - extra, 0.0)


def neural_persistence(weights: Any, p: float = 2.0, *, include: Sequence[str] | None = None) -> NetworkPersistence:
    """Neural persistence of every 2-D weight matrix of a network, and their mean.

    All weights are scaled by the global ``max |w|`` over the chosen matrices.

    Args:
        weights: ``{name: array}`` mapping, nested or flat (PyTorch
            ``state_dict()``, Flax ``variables["params"]``), see :func:`weight_matrices`.
        p: exponent, ``>= 1``.
        include: matrix names to use (default: every 2-D entry).

    Returns:
        :class:`NetworkPersistence`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> net = {"fc1.weight": rng.normal(size=(8, 4)), "fc1.bias": np.zeros(8),
        ...        "fc2.weight": rng.normal(size=(3, 8))}
        >>> res = neural_persistence(net)
        >>> [lay.name for lay in res.layers], 0 < res.mean_normalized < 1
        (['fc1.weight', 'fc2.weight'], True)
    """
    mats = weight_matrices(weights, include=include)
    p = _check_p(p)
    scale = max(float(np.abs(W).max()) for W in mats.values())
    if not scale > 0:
        raise ValueError("every chosen weight is 0; neural persistence needs a nonzero weight to scale by.")
    layers = tuple(layer_neural_persistence(W, p, scale=scale, name=name) for name, W in mats.items())
    mean = float(np.mean([lay.normalized for lay in layers]))
    return NetworkPersistence(layers, mean, scale, _scaled_variance(mats.values(), scale), p)


def _scaled_variance(mats, scale: float) -> float:
    return float((np.abs(np.concatenate([W.ravel() for W in mats])) / scale).var())


def weight_variance(weights: Any, *, include: Sequence[str] | None = None) -> float:
    """Variance of all chosen weights scaled to ``[0, 1]``: the baseline of Girrbach et al.

    Weights are mapped to ``|w| / max|w|`` (the global maximum), the scaling
    under which neural persistence is defined, and the variance is taken over
    all of them together.

    Example:
        >>> weight_variance({"a": np.array([[2.0, -2.0]]), "b": np.array([[1.0], [-1.0]])})
        0.0625
    """
    mats = weight_matrices(weights, include=include)
    scale = max(float(np.abs(W).max()) for W in mats.values())
    if not scale > 0:
        raise ValueError("every chosen weight is 0; the scaled variance needs a nonzero weight to scale by.")
    return _scaled_variance(mats.values(), scale)


class NPVarianceTrend(NamedTuple):
    """Neural persistence and weight variance across checkpoints.

    Attributes:
        np: ``(checkpoint,)`` network neural persistence (mean normalised).
        variance: ``(checkpoint,)`` variance of the scaled weights ``|w| / max|w|``.
        pearson: Pearson correlation of ``np`` with ``variance``.
        pearson_log: Pearson correlation of ``np`` with ``log(variance)``.
    """

    np: np.ndarray
    variance: np.ndarray
    pearson: float
    pearson_log: float


def np_variance_trend(
    checkpoints: Sequence[Any], p: float = 2.0, *, include: Sequence[str] | None = None
) -> NPVarianceTrend:
    """Neural persistence vs. the weight-variance baseline over training checkpoints.

    The variance is that of the weights scaled to ``[0, 1]`` (``|w| / max|w|``
    per checkpoint), as in Girrbach et al., who report a median Pearson
    correlation of about -0.98 over training: NP then tells little beyond
    the variance of the weights.

    Args:
        checkpoints: parameter mappings, one per checkpoint (at least 2).
        p: exponent.
        include: matrix names (default: every 2-D entry).

    Returns:
        :class:`NPVarianceTrend`; correlations are NaN when a series is constant.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> base = rng.normal(size=(20, 10))
        >>> ckpts = [{"W": base * s + rng.normal(size=base.shape)} for s in (0.1, 1.0, 3.0)]
        >>> trend = np_variance_trend(ckpts)
        >>> trend.np.shape, bool(trend.pearson < 0)
        ((3,), True)
    """
    checkpoints = list(checkpoints)
    if len(checkpoints) < 2:
        raise ValueError(f"checkpoints must hold at least 2 parameter mappings; got {len(checkpoints)}.")
    results = [neural_persistence(ckpt, p, include=include) for ckpt in checkpoints]
    nps_arr = np.array([res.mean_normalized for res in results])
    var_arr = np.array([res.variance for res in results])

    def pearson(x, y):
        if np.std(x) == 0 or np.std(y) == 0:
            return float("nan")
        return float(np.corrcoef(x, y)[0, 1])

    return NPVarianceTrend(nps_arr, var_arr, pearson(nps_arr, var_arr), pearson(nps_arr, np.log(var_arr)))
