"""Compile once per machine: JAX's persistent compilation cache in a per-user folder.

Every new process (a CLI call, a notebook kernel) would otherwise compile
holejax's programs again. The first time a holejax kernel module is imported
(:mod:`holejax.filtration`, :mod:`holejax.metrics`), :func:`configure_compile_cache`
points JAX's persistent cache at a per-user cache folder and lowers JAX's
thresholds so that small programs are cached too. Bare ``import holejax``
does not import JAX and does not touch the cache.

The folder is, in order of precedence:

1. the last :func:`set_compile_cache` call (``None`` disables the cache);
2. the environment variable ``HOLEJAX_CACHE_DIR`` (``""``, ``"off"``, ``"0"``,
   ``"false"`` or ``"none"`` disable it);
3. the platform's per-user cache folder: ``$XDG_CACHE_HOME/holejax/jax``
   (default ``~/.cache/holejax/jax``), ``~/Library/Caches/holejax/jax`` on
   macOS, ``%LOCALAPPDATA%\\holejax\\jax`` on Windows.

It is never placed next to the user's data. A cache folder the user set for
JAX itself (``jax_compilation_cache_dir``) is left alone. The cache is
trusted code: like JAX, keep it in a folder only you can write to.

JAX looks a program up in its cache only after tracing and lowering it; the
``executables`` subfolder holds holejax's own programs as loadable
executables, so a later process skips that too (:mod:`holejax._executables`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

__all__ = ["ENV_VAR", "configure_compile_cache", "default_cache_dir", "set_compile_cache"]

ENV_VAR = "HOLEJAX_CACHE_DIR"
_OFF = {"", "off", "0", "false", "none", "no"}
# what this module set, so a folder chosen by the user for JAX is never overridden
_STATE: dict = {"configured": False, "ours": None}


def default_cache_dir() -> Path:
    """The per-user cache folder for compiled programs on this platform.

    Example:
        >>> default_cache_dir().parts[-2:]
        ('holejax', 'jax')
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "holejax" / "jax"


def _from_environment() -> Path | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return default_cache_dir()
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def _apply(path: Path | None) -> Path | None:
    current = jax.config.jax_compilation_cache_dir
    if current is not None and current != _STATE["ours"]:
        return Path(current)  # the user configured JAX's cache: theirs wins
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:  # read-only home, no permission: compile as without a cache
            path = None
    value = None if path is None else str(path)
    if value != current:
        compilation_cache.reset_cache()  # a folder already opened in this process is reopened
        compilation_cache.set_cache_dir(value)
    if value is not None:
        # cache every program: holejax's are many and small, JAX's defaults skip
        # those that compile in under a second
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _STATE["ours"] = value
    return path


def configure_compile_cache() -> Path | None:
    """Turn the persistent cache on as configured, once per process (idempotent).

    Returns:
        The cache folder in use, or ``None`` when disabled.
    """
    if not _STATE["configured"]:
        _STATE["configured"] = True
        _STATE["path"] = _apply(_from_environment())
    return _STATE["path"]


def set_compile_cache(path: str | os.PathLike | None) -> Path | None:
    """Move holejax's compilation cache to ``path``, or disable it with ``None``.

    Takes effect for programs compiled afterwards in this process; overrides
    ``HOLEJAX_CACHE_DIR``.

    Args:
        path: a folder (created if missing) or ``None``.

    Returns:
        The folder now in use, or ``None``.

    Example:
        >>> import holejax as hj, tempfile
        >>> before = configure_compile_cache()
        >>> folder = tempfile.mkdtemp()
        >>> str(hj.set_compile_cache(folder)) == folder
        True
        >>> hj.set_compile_cache(None) is None
        True
        >>> hj.set_compile_cache(before) == before
        True
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder (str or os.PathLike) or None; got {type(path).__name__}.")
    _STATE["configured"] = True
    _STATE["path"] = _apply(None if path is None else Path(path).expanduser())
    return _STATE["path"]
