"""The Perturbation descriptor: a stable name, a category and JSON-safe parameters.

A :class:`Perturbation` only *describes* a change to the inputs or to the
model. Input noise is applied here, in JAX, with explicit PRNG keys
(:meth:`Perturbation.apply`, :meth:`Perturbation.apply_at`); compression is
framework code and lives in the adapters (``apply_compression`` in
``holejax_torch.compress`` and ``holejax_flax.compress``).

The name is the store's ``perturbation`` coordinate, so it is stable and
readable: ``"clean"``, ``"gaussian(sigma=0.1)"``,
``"salt_and_pepper(p=0.05, clip=(0.0, 1.0))"``, ``"quantize(bits=4, scheme=affine)"``.
:func:`from_name` and :func:`from_params` rebuild a descriptor from either form.
"""

from __future__ import annotations

import dataclasses
import math
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from holejax._checks import close_matches

__all__ = [
    "KINDS",
    "SEVERITY_PARAMETER",
    "Perturbation",
    "clean",
    "from_name",
    "from_params",
    "sweep",
]

KINDS = ("clean", "input", "compression")

# method -> its severity parameter (the first argument of its factory)
SEVERITY_PARAMETER: dict[str, str] = {
    "gaussian": "sigma",
    "uniform": "a",
    "salt_and_pepper": "p",
    "poisson": "lam",
    "speckle": "sigma",
    "global_l1_prune": "amount",
    "layerwise_l1_prune": "amount",
    "quantize": "bits",
}

# method -> factory; filled by the modules that define the factories
_FACTORIES: dict[str, Callable[..., Perturbation]] = {}
_KIND_OF: dict[str, str] = {"clean": "clean"}


def register_factory(method: str, kind: str) -> Callable[[Callable[..., Perturbation]], Callable[..., Perturbation]]:
    """Decorator recording ``factory`` as the maker of ``method`` perturbations of ``kind``.

    :func:`from_name` and :func:`from_params` look the factory up by method
    name; noise.py and compression.py register theirs.
    """

    def wrap(factory: Callable[..., Perturbation]) -> Callable[..., Perturbation]:
        _FACTORIES[method] = factory
        _KIND_OF[method] = kind
        return factory

    return wrap


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """A named change to the inputs (noise) or to the model (compression).

    Build one with the factories (:func:`clean`, :func:`~holejax.perturb.gaussian`,
    :func:`~holejax.perturb.global_l1_prune`, ...), not directly: they check
    the parameters.

    Attributes:
        method: what is done, e.g. ``"gaussian"``, ``"quantize"``, ``"clean"``.
        args: ``(parameter, value)`` pairs in the factory's order; values are
            ints, floats, strings or tuples of floats.

    Example:
        >>> import holejax as hj
        >>> p = hj.gaussian(sigma=0.1)
        >>> p.name, p.kind, p.params
        ('gaussian(sigma=0.1)', 'input', {'kind': 'gaussian', 'sigma': 0.1})
        >>> hj.clean().name
        'clean'
    """

    method: str
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def kind(self) -> str:
        """``"clean"``, ``"input"`` (noise on the inputs) or ``"compression"`` (of the model)."""
        return _KIND_OF[self.method]

    @property
    def name(self) -> str:
        """Stable readable name, the store's ``perturbation`` coordinate."""
        if not self.args:
            return self.method
        inner = ", ".join(f"{k}={_format_value(v)}" for k, v in self.args)
        return f"{self.method}({inner})"

    @property
    def params(self) -> dict[str, Any]:
        """JSON-safe parameters: ``{"kind": method, **args}`` (recorded in the store attrs)."""
        out: dict[str, Any] = {"kind": self.method}
        out.update({k: _json_value(v) for k, v in self.args})
        return out

    def get(self, parameter: str, default: Any = None) -> Any:
        """The value of one parameter, or ``default``."""
        return dict(self.args).get(parameter, default)

    def __str__(self) -> str:
        return self.name

    # -- applying input noise -------------------------------------------------
    def apply(self, x: Any, key: Any) -> Any:
        """Apply the perturbation to a batch of inputs.

        Each sample ``i`` of the batch draws its noise from
        ``jax.random.fold_in(key, i)``, so the result is deterministic for a
        given key. Use :meth:`apply_at` when batches of one data set must
        agree with each other whatever the batch size.

        Args:
            x: numpy or jax array ``(batch, ...)`` of numbers.
            key: a ``jax.random.key`` (or legacy ``PRNGKey``).

        Returns:
            An array of the same shape, dtype and kind (numpy in, numpy out).

        Raises:
            TypeError: for compression perturbations (apply those to the model
                with the adapter's ``apply_compression``).
        """
        from holejax.perturb import noise  # import cycle: noise.py builds on Perturbation

        return noise.apply_noise(self, x, key=key)

    def apply_at(self, x: Any, seed: int = 0, start: int = 0) -> Any:
        """Apply the perturbation to samples ``start .. start + batch - 1`` of a data set.

        Sample ``j`` draws its noise from a key made of ``seed``, the
        perturbation's name and ``j`` alone, so the noise a sample receives
        does not depend on how the data set is cut into batches (an export
        that resumes, or a study that recomputes accuracy, sees exactly the
        same noisy inputs).

        Args:
            x: numpy or jax array ``(batch, ...)``.
            seed: the study's integer seed.
            start: index of ``x[0]`` in the whole data set.

        Returns:
            An array of the same shape, dtype and kind as ``x``.

        Example:
            >>> import numpy as np, holejax as hj
            >>> x = np.zeros((4, 3), np.float32)
            >>> p = hj.gaussian(sigma=1.0)
            >>> whole = p.apply_at(x, seed=0)
            >>> parts = np.concatenate([p.apply_at(x[:1], seed=0), p.apply_at(x[1:], seed=0, start=1)])
            >>> bool(np.array_equal(whole, parts))
            True
        """
        from holejax.perturb import noise  # import cycle: noise.py builds on Perturbation

        return noise.apply_noise(self, x, seed=seed, start=start)

    def sample_key_seed(self) -> int:
        """A 31-bit integer derived from the name (CRC-32), folded into the study seed."""
        return zlib.crc32(self.name.encode("utf-8")) & 0x7FFFFFFF


def clean() -> Perturbation:
    """The identity perturbation, named ``"clean"`` (first in every store).

    Example:
        >>> import holejax as hj
        >>> hj.clean().name, hj.clean().kind
        ('clean', 'clean')
    """
    return Perturbation("clean")


_FACTORIES["clean"] = clean


# -- parameter checks shared by the factories ---------------------------------
def check_number(
    value: Any,
    argument: str,
    method: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Return ``value`` as a float (or int) inside the given bounds, else raise ValueError."""
    ok_type = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if integer:
        ok_type = ok_type and float(value) == int(value)
    if not ok_type or not math.isfinite(float(value)):
        what = "an integer" if integer else "a finite number"
        raise ValueError(f"{method}: {argument} must be {what}; got {value!r}.")
    v: float | int = int(value) if integer else float(value)
    lo_bad = low is not None and (v <= low if low_open else v < low)
    hi_bad = high is not None and (v >= high if high_open else v > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"{method}: expected {lo}{argument}{hi}; got {argument}={value!r}.")
    return v


def check_clip(clip: Any, method: str) -> tuple[float, float] | None:
    """Validate an optional ``(low, high)`` clipping range."""
    if clip is None:
        return None
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(
            f"{method}: clip must be None or a pair (low, high), e.g. clip=(0.0, 1.0); got {clip!r}."
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{method}: clip must be finite with low < high; got clip={clip!r}.")
    return (lo, hi)


# -- names back to descriptors ------------------------------------------------
_NAME_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return tuple(_parse_value(t) for t in _split_top_level(text[1:-1]))
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("'\"")


def _unknown_method(method: str, argument: str) -> ValueError:
    choices = sorted(_FACTORIES)
    hint = close_matches(method, choices)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    return ValueError(
        f"{argument}: unknown perturbation {method!r}; expected one of {choices}.{did_you_mean}"
    )


def from_params(params: dict[str, Any]) -> Perturbation:
    """Rebuild a Perturbation from its :attr:`Perturbation.params` dict.

    Example:
        >>> from holejax.perturb import from_params
        >>> from_params({"kind": "uniform", "a": 0.2}).name
        'uniform(a=0.2)'
    """
    if not isinstance(params, dict) or "kind" not in params:
        raise ValueError(
            f"params must be a dict with a 'kind' entry such as {{'kind': 'gaussian', 'sigma': 0.1}}; "
            f"got {params!r}."
        )
    method = params["kind"]
    if method not in _FACTORIES:
        raise _unknown_method(method, "params['kind']")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k != "kind"}
    try:
        return _FACTORIES[method](**kwargs)
    except TypeError as err:
        raise ValueError(f"params {params!r} do not fit perturbation {method!r}: {err}") from None


def from_name(name: str | Perturbation) -> Perturbation:
    """Parse a perturbation name such as ``"gaussian(sigma=0.1)"`` back into a descriptor.

    A :class:`Perturbation` is returned unchanged. Bare method names use the
    factory defaults: ``from_name("global_l1_prune")`` is
    ``global_l1_prune(amount=0.3)``.

    Example:
        >>> from holejax.perturb import from_name
        >>> from_name("quantize(bits=4, scheme=affine)").params
        {'kind': 'quantize', 'bits': 4, 'scheme': 'affine'}
    """
    if isinstance(name, Perturbation):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"perturbation must be a Perturbation or its name (str); got {type(name).__name__}."
        )
    match = _NAME_RE.match(name)
    if match is None:
        raise ValueError(
            f"perturbation name {name!r} is not of the form method(param=value, ...), "
            "e.g. 'gaussian(sigma=0.1)'."
        )
    method, inner = match.group(1), match.group(2)
    if method not in _FACTORIES:
        raise _unknown_method(method, f"perturbation {name!r}")
    kwargs: dict[str, Any] = {}
    for part in _split_top_level(inner or ""):
        if "=" not in part:
            raise ValueError(
                f"perturbation {name!r}: argument {part.strip()!r} must be written as param=value."
            )
        key, value = part.split("=", 1)
        kwargs[key.strip()] = _parse_value(value)
    try:
        return _FACTORIES[method](**kwargs)
    except TypeError as err:
        raise ValueError(f"perturbation {name!r}: {err}") from None


def sweep(method: str, values: Iterable[Any], **fixed: Any) -> list[Perturbation]:
    """Perturbations of one method at several severities.

    The severity is the method's first parameter (``sigma`` for gaussian and
    speckle, ``a`` for uniform, ``p`` for salt_and_pepper, ``lam`` for
    poisson, ``amount`` for pruning, ``bits`` for quantize).

    Args:
        method: a perturbation method name, e.g. ``"gaussian"``.
        values: the severities.
        **fixed: further parameters passed to every factory call (``clip=...``).

    Returns:
        One Perturbation per value, in order.

    Example:
        >>> from holejax.perturb import sweep
        >>> [p.name for p in sweep("speckle", [0.1, 0.2])]
        ['speckle(sigma=0.1)', 'speckle(sigma=0.2)']
    """
    if method not in SEVERITY_PARAMETER:
        choices = sorted(SEVERITY_PARAMETER)
        hint = close_matches(method, choices)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(
            f"method={method!r} has no severity to sweep; expected one of {choices}.{did_you_mean}"
        )
    values = list(values)
    if not values:
        raise ValueError("values must hold at least one severity; got an empty sequence.")
    factory = _FACTORIES[method]
    return [factory(**{SEVERITY_PARAMETER[method]: v}, **fixed) for v in values]


def as_perturbations(perturbations: Sequence[Any] | None, argument: str = "perturbations") -> list[Perturbation]:
    """Normalise a list of Perturbations or names; ``clean`` is put first (added if missing)."""
    if perturbations is None:
        return [clean()]
    if isinstance(perturbations, (str, Perturbation)):
        perturbations = [perturbations]
    out: list[Perturbation] = []
    for item in perturbations:
        try:
            p = from_name(item)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{argument}: {err}") from None
        if p.name in {q.name for q in out}:
            raise ValueError(f"{argument}: {p.name!r} is listed twice; list each perturbation once.")
        out.append(p)
    rest = [p for p in out if p.kind != "clean"]
    return [clean(), *rest]
