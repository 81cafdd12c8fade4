"""Fingerprints: what a store was exported from, so that things which do not belong together are refused.

An activation store records, in its ``fingerprint`` attribute, BLAKE2b
digests of the model's weights, of the inputs as they streamed (a chain over
the batches, in sample order, so a resumed export continues it), of the
labels and of every perturbation (its parameters and the export seed), plus
the holejax version and a random id of the store. A results Dataset from
``hj.analyze`` carries the fingerprint of the store it was computed from
(``activations_fingerprint``). With them:

- ``mode="resume"`` / ``"append"`` refuse another model (other weights) or
  other inputs (the first samples differ);
- ``hj.write_report(study, acts)`` refuses a study computed from other
  activations, and ``hj.topology_summary(acts, weights=...)`` refuses
  weights of another model (``check_fingerprint=False`` overrides both).

Digests are 16-byte BLAKE2b of the raw bytes, dtype and shape of each array;
hashing runs at memory speed and releases the GIL.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "InputsDigest",
    "array_digest",
    "check_same_activations",
    "check_same_model",
    "check_study_and_store",
    "export_fingerprint",
    "inputs_digest",
    "model_digest",
    "new_store_id",
    "perturbation_digests",
    "weights_digest",
]

_DIGEST_SIZE = 16


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=_DIGEST_SIZE)


def _feed_array(h: Any, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))


def array_digest(arr: Any) -> str:
    """Hex BLAKE2b digest of an array's dtype, shape and bytes.

    Example:
        >>> array_digest(np.arange(3)) == array_digest(np.arange(3)) != array_digest(np.arange(3.0))
        True
    """
    h = _hasher()
    _feed_array(h, np.asarray(arr))
    return h.hexdigest()


def _entries(x: Any) -> list[tuple[str, np.ndarray]]:
    """The arrays of a model input (an array, a mapping or a tuple of arrays), keyed in a fixed order."""
    if isinstance(x, Mapping):
        return [(str(k), np.asarray(x[k])) for k in sorted(x, key=str)]
    if isinstance(x, (tuple, list)):
        return [(str(i), np.asarray(v)) for i, v in enumerate(x)]
    return [("", np.asarray(x))]


def inputs_digest(x: Any, first: int = 0) -> str:
    """Hex digest of a model input (array, mapping or tuple of ``(sample, ...)`` arrays) from sample ``first`` on.

    Example:
        >>> x = {"ids": np.arange(6).reshape(3, 2), "mask": np.ones((3, 2), np.int8)}
        >>> inputs_digest(x) == inputs_digest(dict(reversed(x.items()))) != inputs_digest(x, first=1)
        True
    """
    h = _hasher()
    for key, arr in _entries(x):
        h.update(key.encode())
        _feed_array(h, arr[first:])
    return h.hexdigest()


def _n_samples(x: Any) -> int:
    return len(_entries(x)[0][1])


class InputsDigest(NamedTuple):
    """A chain of digests over the input batches of an export, in sample order.

    Attributes:
        digest: hex digest of the samples ``0 .. samples-1`` (the empty string before any).
        samples: how many samples the chain covers.

    Example:
        >>> x = np.arange(12.0).reshape(6, 2)
        >>> a = InputsDigest().add(0, x[:4]).add(4, x[4:])
        >>> a.samples, a == InputsDigest.from_attrs(a.to_attrs()), a.add(2, x[2:4]) == a
        (6, True, True)
    """

    digest: str = ""
    samples: int = 0

    def add(self, start: int, x: Any) -> InputsDigest:
        """The chain extended by the batch ``x`` of samples ``start ..``; samples it covers already are skipped."""
        stop = int(start) + _n_samples(x)
        if stop <= self.samples:
            return self
        if start > self.samples:
            raise ValueError(
                f"input batch starts at sample {start}, but the inputs digest covers samples 0..{self.samples - 1}; "
                "batches must arrive in order."
            )
        h = _hasher()
        h.update(self.digest.encode())
        h.update(inputs_digest(x, first=self.samples - int(start)).encode())
        return InputsDigest(h.hexdigest(), stop)

    def to_attrs(self) -> dict:
        return {"digest": self.digest, "samples": self.samples}

    @classmethod
    def from_attrs(cls, attrs: Any) -> InputsDigest:
        if not isinstance(attrs, Mapping):
            return cls()
        return cls(str(attrs.get("digest", "")), int(attrs.get("samples", 0)))


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(path, leaf)`` of a nested mapping / sequence of arrays, in sorted path order."""
    if isinstance(tree, Mapping) or hasattr(tree, "items"):
        out = []
        for key in sorted(tree.keys(), key=str):
            out.extend(_leaves(tree[key], f"{prefix}/{key}" if prefix else str(key)))
        return out
    if isinstance(tree, (tuple, list)):
        out = []
        for i, v in enumerate(tree):
            out.extend(_leaves(v, f"{prefix}/{i}" if prefix else str(i)))
        return out
    return [(prefix, tree)]


def _leaf_bytes(leaf: Any) -> np.ndarray:
    """A weight as a numpy array: torch tensors (any dtype, bfloat16 too) as their raw bytes."""
    if type(leaf).__module__.startswith("torch"):
        import torch  # optional framework: only reached for torch tensors

        t = leaf.detach().cpu().contiguous()
        return t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8)
    if hasattr(leaf, "value") and not hasattr(leaf, "shape"):  # flax.nnx Variable
        leaf = leaf.value
    return np.asarray(leaf)


def weights_digest(weights: Mapping[str, Any]) -> str:
    """Hex digest of a weight mapping: a PyTorch ``state_dict()`` or Flax variables / params.

    Flax variables (a mapping with a ``params`` collection) are reduced to
    their ``params``, so ``weights_digest(variables) == weights_digest(variables["params"])``.

    Example:
        >>> w = {"params": {"Dense_0": {"kernel": np.eye(2), "bias": np.zeros(2)}}}
        >>> weights_digest(w) == weights_digest(w["params"]) != weights_digest({"params": {"Dense_0": {}}})
        True
    """
    if isinstance(weights, Mapping) and "params" in weights and isinstance(weights["params"], Mapping):
        weights = weights["params"]
    h = _hasher()
    for path, leaf in _leaves(weights):
        h.update(path.encode())
        _feed_array(h, _leaf_bytes(leaf))
    return h.hexdigest()


def model_digest(model: Any) -> str | None:
    """Hex digest of a model's weights, or None where the weights cannot be found.

    A PyTorch module: its ``state_dict()``; a Flax Linen ``(module, variables, ...)``
    pair: ``variables`` (its ``params``); a Flax NNX module: its ``nnx.Param`` state.
    """
    if hasattr(model, "state_dict") and callable(model.state_dict):
        return weights_digest(model.state_dict())
    if isinstance(model, tuple) and len(model) >= 2 and isinstance(model[1], Mapping):
        return weights_digest(model[1])
    nnx = sys.modules.get("flax.nnx")  # an NNX model means flax is imported already
    if nnx is not None and isinstance(model, nnx.Module):
        return weights_digest(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return None


def export_fingerprint(model: Any, example: Any) -> dict[str, str | None]:
    """The attributes an export records before it starts: its model's weights digest and its first samples'.

    ``mode="resume"`` and ``"append"`` compare them with the store's (see
    ``ActivationWriter.create``).

    Example:
        >>> sorted(export_fingerprint(None, np.zeros((2, 3))))
        ['inputs_head', 'model_digest']
    """
    return {"model_digest": model_digest(model), "inputs_head": inputs_digest(example)}


def perturbation_digests(params: Mapping[str, Any], seed: Any) -> dict[str, str]:
    """Per perturbation name: a digest of its parameters and the export's noise seed.

    Example:
        >>> d = perturbation_digests({"clean": {}, "gaussian": {"sigma": 0.1}}, 0)
        >>> d["gaussian"] != perturbation_digests({"gaussian": {"sigma": 0.2}}, 0)["gaussian"]
        True
    """
    out = {}
    for name, p in params.items():
        h = _hasher()
        h.update(json.dumps([name, p, seed], sort_keys=True, default=str).encode())
        out[str(name)] = h.hexdigest()
    return out


def new_store_id() -> str:
    """A random id for a new store."""
    return uuid.uuid4().hex


_OVERRIDE = "pass check_fingerprint=False if you mean to combine them"


def check_same_activations(
    study_fingerprint: Any, acts_fingerprint: Any, perturbations: Any = (), *, what: str = "study"
) -> None:
    """Refuse activations that are not those the ``what`` was computed from.

    Compares the weights, inputs and labels digests (where both sides have
    them, else the store ids) and the digest of every perturbation the study
    holds. A study without a fingerprint (written before fingerprints) is
    not checked.

    Raises:
        ValueError: naming what differs and the override.

    Example:
        >>> fp = {"model": "a", "inputs": "b", "labels": "c", "perturbations": {"clean": "d"}, "store": "s"}
        >>> check_same_activations(fp, dict(fp, store="t"), ["clean"])  # a re-export of the same: fine
        >>> check_same_activations(fp, dict(fp, model="x"), ["clean"])
        Traceback (most recent call last):
        ...
        ValueError: the study was computed from activations of other model weights than acts holds; pass the activation store it was computed from (hj.open_activations(study.attrs['source'])), or pass check_fingerprint=False if you mean to combine them.
    """
    if not isinstance(study_fingerprint, Mapping) or not study_fingerprint:
        return
    acts_fp = acts_fingerprint if isinstance(acts_fingerprint, Mapping) else {}
    fix = (
        f"pass the activation store it was computed from (hj.open_activations({what}.attrs['source'])), or "
        f"{_OVERRIDE}."
    )
    content = [("model", "model weights"), ("inputs", "inputs"), ("labels", "labels")]
    known = [k for k, _ in content if study_fingerprint.get(k) and acts_fp.get(k)]
    for key, words in content:
        if key in known and study_fingerprint[key] != acts_fp[key]:
            raise ValueError(f"the {what} was computed from activations of other {words} than acts holds; {fix}")
    if not {"model", "inputs"} <= set(known):
        if study_fingerprint.get("store") != acts_fp.get("store"):
            raise ValueError(
                f"the {what} was computed from another activation store than acts (store ids "
                f"{study_fingerprint.get('store')!r} and {acts_fp.get('store')!r}); {fix}"
            )
    theirs = acts_fp.get("perturbations") or {}
    ours = study_fingerprint.get("perturbations") or {}
    for name in perturbations:
        name = str(name)
        if name in ours and ours[name] != theirs.get(name):
            raise ValueError(
                f"the {what}'s perturbation {name!r} differs from the one acts holds (other parameters or noise "
                f"seed, or acts lacks it); {fix}"
            )


def check_same_model(acts_fingerprint: Any, weights: Any) -> None:
    """Refuse ``weights`` that are not those of the model whose activations the store holds.

    Raises:
        ValueError: naming the mismatch and the override.
    """
    stored = acts_fingerprint.get("model") if isinstance(acts_fingerprint, Mapping) else None
    if not stored or weights is None:
        return
    if weights_digest(weights) != stored:
        raise ValueError(
            "weights are not those of the model whose activations acts holds (their digest differs from the "
            "store's fingerprint); pass that model's state_dict() / Flax params, or "
            f"{_OVERRIDE}."
        )


def check_study_and_store(study: Any, acts: Any, *, check_fingerprint: bool = True, what: str = "study") -> None:
    """Refuse a results Dataset (``study``) and an activation store (``acts``) that do not belong together.

    Datasets only: other types are left to the caller's own checks. See
    :func:`check_same_activations`; ``check_fingerprint=False`` skips the check.
    """
    if not check_fingerprint or not all(hasattr(ds, "attrs") and hasattr(ds, "coords") for ds in (study, acts)):
        return
    perturbations = study.coords["perturbation"].values if "perturbation" in study.coords else ()
    check_same_activations(
        study.attrs.get("activations_fingerprint"), acts.attrs.get("fingerprint"), perturbations, what=what
    )
