"""Compiled programs kept between processes: a later process loads them instead of tracing them.

JAX's persistent cache (:mod:`holejax._cache`) keeps XLA's compilations, but
JAX finds a cached program by its lowered module, so every new process still
traces and lowers each program before it can look it up: for a study's dozen
programs, as long as a third of the analysis. :func:`stored_jit` is
:func:`jax.jit` plus a store of executables: the first call with new static
arguments and argument types compiles as usual and writes the executable
(:func:`jax.experimental.serialize_executable.serialize`) to
``<cache folder>/executables/<fingerprint>/``; a later process loads it from
there, with no tracing, lowering or compilation. (Programs built for the
store are compiled by XLA, never read from JAX's cache: an executable read
from there does not serialize whole.) Programs with custom calls (LAPACK's
SVD for principal components, host callbacks) are not stored: JAX sets up what they call
while it lowers them, which a loaded program skips; they go through JAX's
cache as before.

The fingerprint covers what an executable depends on besides its arguments:
holejax's source files, the JAX and jaxlib versions, the backend and its
device, the processor's instruction set (on CPU) and ``XLA_FLAGS``. The
program key adds the function, its static arguments, the shapes, dtypes and
weak types of the others and the JAX options that change a program
(``jax_enable_x64``, the default matmul precision, ...). An edit of any
holejax file, another JAX or another machine sharing the home folder thus
starts a new fingerprint folder; the newest few are kept. A file that does not
load is compiled again and replaced. The store is off when the compilation
cache is (``HOLEJAX_CACHE_DIR=off``, ``hj.set_compile_cache(None)``).

Calls with tracers (inside ``jax.jit``, ``jax.vmap``, ``jax.grad``), with
arrays on another device than the default one, or with JAX's debugging
options on (``jax_disable_jit``, ``jax_debug_nans``, ``jax_debug_infs``,
``jax_enable_checks``) go to :func:`jax.jit` unchanged.

Like JAX's cache, the store holds code that runs when loaded: keep the cache
folder where only you can write.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import os
import pickle
import platform
import shutil
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

import jax
import jax.monitoring
from jax.experimental import serialize_executable

from holejax._cache import configure_compile_cache

__all__ = ["LOAD_EVENT", "StoredProgram", "stored_jit", "store_folder"]

LOAD_EVENT = "/holejax/executables/load_duration"  # jax.monitoring duration event of each load

# options that change the program JAX builds for the same arguments
_PROGRAM_OPTIONS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_numpy_rank_promotion",
    "jax_numpy_dtype_promotion",
    "jax_default_prng_impl",
    "jax_enable_custom_prng",
    "jax_threefry_partitionable",
    "jax_use_shardy_partitioner",
    "jax_exec_time_optimization_effort",
    "jax_memory_fitting_effort",
)
# options under which calls go to jax.jit (their checks run in its dispatch)
_PLAIN_JIT_OPTIONS = ("jax_disable_jit", "jax_debug_nans", "jax_debug_infs", "jax_enable_checks")
KEEP_FINGERPRINTS = 4  # fingerprint folders kept: a few holejax / JAX versions side by side
_SUFFIX = ".jaxexe"
_PROCESS: dict = {}  # fingerprint and the folders tidied in this process


def _options() -> tuple:
    return tuple(getattr(jax.config, name, None) for name in _PROGRAM_OPTIONS)


def _plain_jit() -> bool:
    return any(getattr(jax.config, name, False) for name in _PLAIN_JIT_OPTIONS) or (
        getattr(jax.config, "jax_default_device", None) is not None
    )


def _processor() -> str:
    """The instruction-set flags of this CPU (XLA's CPU code is built for them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def fingerprint() -> str:
    """Hex digest of what every stored executable of this process depends on besides its arguments.

    Example:
        >>> len(fingerprint())
        32
    """
    if "fingerprint" not in _PROCESS:
        h = hashlib.sha256()
        package = Path(__file__).resolve().parent
        for path in sorted(package.rglob("*.py")):
            h.update(path.relative_to(package).as_posix().encode())
            h.update(path.read_bytes())
        device = jax.devices()[0]
        try:
            jaxlib = importlib.metadata.version("jaxlib")
        except importlib.metadata.PackageNotFoundError:
            jaxlib = "?"
        backend = device.client
        for part in (jax.__version__, jaxlib, backend.platform, backend.platform_version, device.device_kind,
                     platform.machine(), _processor() if backend.platform == "cpu" else "",
                     os.environ.get("XLA_FLAGS", "")):
            h.update(b"\0" + str(part).encode())
        _PROCESS["fingerprint"] = h.hexdigest()[:32]
    return _PROCESS["fingerprint"]


def store_folder() -> Path | None:
    """The folder this process writes executables to, or ``None`` when the cache is off.

    Example:
        >>> folder = store_folder()
        >>> folder is None or folder.parent.name == "executables"
        True
    """
    cache = configure_compile_cache()
    return None if cache is None else cache / "executables" / fingerprint()


def _tidy(folder: Path) -> None:
    """Mark ``folder`` used now and remove all but the newest KEEP_FINGERPRINTS siblings (once per process)."""
    if folder in _PROCESS.setdefault("tidied", set()):
        return
    _PROCESS["tidied"].add(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
        siblings = sorted((p for p in folder.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    except OSError:
        return
    for old in siblings[:-KEEP_FINGERPRINTS]:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def _aval(x) -> tuple:
    if isinstance(x, jax.ShapeDtypeStruct):
        return tuple(x.shape), str(x.dtype), bool(x.weak_type)
    a = jax.typeof(x)
    return a.shape, str(a.dtype), a.weak_type


def _storable(leaves: list) -> bool:
    """No tracer among ``leaves``, and their arrays sit on the default device only."""
    default = None
    for x in leaves:
        if isinstance(x, jax.core.Tracer):
            return False
        if isinstance(x, jax.Array):
            default = default or jax.devices()[0]
            if x.devices() != {default}:
                return False
    return not _plain_jit()


def _example(tree) -> object:
    """The pytree ``tree`` with its leaves numbered: picklable, and ``jax.tree.structure`` of it is ``tree``."""
    return jax.tree.unflatten(tree, range(tree.num_leaves))


class StoredProgram:
    """A function compiled by :func:`jax.jit`, whose executables are kept between processes.

    Calling it is calling ``jax.jit(fun, static_argnames=...)``; :meth:`compiled`
    builds (or loads) the executable for given arguments ahead of the call.
    Only functions of holejax's own modules are written to the store (its
    fingerprint covers holejax's sources); others are kept in this process.
    """

    def __init__(self, fun, static_argnames=()):
        self.fun = fun
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.jit = jax.jit(fun, static_argnames=self.static_argnames)
        self._signature = inspect.signature(fun)
        self._name = f"{fun.__module__}.{fun.__qualname__}"
        # the fingerprint covers holejax's sources only: other functions are kept in this process alone
        self._on_disk = fun.__module__.split(".")[0] == "holejax"
        self._executables: dict = {}  # program key -> jax.stages.Compiled
        self._building: dict = {}  # program key -> lock held while it is built
        self._lock = threading.Lock()
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        static, dynamic = self._split(args, kwargs)
        leaves, tree = jax.tree.flatten(dynamic)
        if not _storable(leaves):
            return self.jit(*args, **kwargs)
        return self._executable(static, dynamic, leaves, tree)(**dynamic)

    def compiled(self, *args, **kwargs) -> jax.stages.Compiled:
        """The executable for these arguments (arrays or :class:`jax.ShapeDtypeStruct`), built or loaded now.

        The call with arguments of the same types then runs it without
        building anything; call it with the arguments other than the static ones.
        """
        static, dynamic = self._split(args, kwargs)
        leaves, tree = jax.tree.flatten(dynamic)
        return self._executable(static, dynamic, leaves, tree)

    def cache_size(self) -> int:
        """How many executables (argument types and static arguments) this process holds for the function."""
        return len(self._executables)

    def lower(self, *args, **kwargs) -> jax.stages.Lowered:
        """``jax.jit(fun).lower(...)``: the lowered program, for inspection."""
        return self.jit.lower(*args, **kwargs)

    def _split(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        static = tuple((name, arguments[name]) for name in self.static_argnames)
        return static, {k: v for k, v in arguments.items() if k not in self.static_argnames}

    def _executable(self, static: tuple, dynamic: dict, leaves: list, tree) -> jax.stages.Compiled:
        key = (static, tree, tuple(_aval(x) for x in leaves), _options())
        found = self._executables.get(key)
        if found is not None:
            return found
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one thread builds a program; the others wait for it
            found = self._executables.get(key)
            if found is None:
                found = self._load_or_build(key, static, dynamic)
                self._executables[key] = found
        return found

    def _load_or_build(self, key: tuple, static: tuple, dynamic: dict) -> jax.stages.Compiled:
        folder = store_folder() if self._on_disk else None
        if folder is None:
            return self.jit.lower(**dynamic, **dict(static)).compile()
        static_args, tree, avals, options = key
        text = repr((self._name, static_args, str(tree), avals, options))
        path = folder / (hashlib.sha256(text.encode()).hexdigest()[:40] + _SUFFIX)
        _tidy(folder)
        loaded = _load(path, text)
        if loaded is not None:
            return loaded
        lowered = self._jit_named_once().lower(**dynamic, **dict(static))
        compiled = lowered.compile()
        if "custom_call" not in lowered.as_text():
            _save(path, text, compiled)
        return compiled

    def _jit_named_once(self):
        """``jax.jit`` of the function under a name no other program has.

        An executable that JAX read from its own cache does not serialize
        whole (on CPU its code is left out, and it fails when run after
        loading). Under a new name the program is not in JAX's cache, so XLA
        compiles it here and the store gets a complete executable.
        """
        fun = self.fun

        @functools.wraps(fun)
        def program(*args, **kwargs):
            return fun(*args, **kwargs)

        program.__name__ = program.__qualname__ = f"{fun.__name__}_{uuid.uuid4().hex[:12]}"
        return jax.jit(program, static_argnames=self.static_argnames)


def _load(path: Path, text: str) -> jax.stages.Compiled | None:
    """The executable stored at ``path`` for program ``text``; ``None`` if absent or unloadable.

    Each load is reported to :mod:`jax.monitoring` as a duration event named :data:`LOAD_EVENT`.
    """
    start = time.perf_counter()
    try:
        with open(path, "rb") as f:
            record = pickle.loads(zlib.decompress(f.read()))
        if record.get("program") != text:
            return None
        device = jax.devices()[0]
        loaded = serialize_executable.deserialize_and_load(
            record["executable"], jax.tree.structure(record["in"]), jax.tree.structure(record["out"]),
            backend=device.client, execution_devices=[device])
    except Exception:  # absent, truncated, from another build, unpicklable: compile again
        return None
    jax.monitoring.record_event_duration_secs(LOAD_EVENT, time.perf_counter() - start)
    return loaded


def _save(path: Path, text: str, compiled: jax.stages.Compiled) -> None:
    """Write ``compiled`` to ``path`` atomically; programs JAX cannot serialize are not stored."""
    try:
        executable, in_tree, out_tree = serialize_executable.serialize(compiled)
        record = {"program": text, "executable": executable, "in": _example(in_tree), "out": _example(out_tree)}
        data = zlib.compress(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), 1)  # a quarter of the size
    except Exception:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    except OSError:  # a read-only or removed folder: nothing stored
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:  # a full disk: no half-written file left behind
        Path(tmp).unlink(missing_ok=True)


def stored_jit(fun=None, *, static_argnames=()):
    """``jax.jit`` whose executables are kept between processes (see the module docstring).

    Args:
        fun: the function; omit it to use ``stored_jit(static_argnames=...)`` as a decorator.
        static_argnames: names of arguments that select the program (hashable).

    Example:
        >>> import jax.numpy as jnp
        >>> @stored_jit(static_argnames="power")
        ... def moment(x, power):
        ...     return jnp.mean(x**power)
        >>> float(moment(jnp.arange(4.0), power=2))
        3.5
    """
    if fun is None:
        return functools.partial(stored_jit, static_argnames=static_argnames)
    return StoredProgram(fun, static_argnames)
