"""Package attributes that load their module on first use (PEP 562).

Example:
    >>> getattr_ = lazy_getattr("json", {"dumps": "json"})
    >>> getattr_("dumps")([1])
    '[1]'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``, whose public ``name`` lives in module ``exports[name]``.

    The first access imports the module and stores the value in the
    package, so later accesses are plain attribute reads.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
