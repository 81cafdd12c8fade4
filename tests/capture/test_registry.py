"""The adapter registry: entry points, dispatch, and the error when nothing accepts a model."""

from __future__ import annotations

import importlib.metadata

import pytest

from holejax.capture import ENTRY_POINT_GROUP, Adapter, adapters, find_adapter
from holejax.capture import registry

from numpy_adapter import ADAPTER, NumpyNet


def test_installed_adapters_are_registered_and_follow_the_protocol():
    found = adapters()
    assert {"torch", "flax"} <= set(found)
    for adapter in found.values():
        assert isinstance(adapter, Adapter)
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert names["torch"] == "holejax_torch:ADAPTER" and names["flax"] == "holejax_flax:ADAPTER"


def test_unsupported_model_names_adapters_and_install_hints():
    with pytest.raises(TypeError, match=r"(?s)builtins.object is not supported.*installed: \['flax', 'torch'\].*pip install 'holejax\[torch\]'.*\(module, variables\)"):
        find_adapter(object())


def test_candidates_and_broken_entry_points(monkeypatch):
    assert find_adapter(NumpyNet(), candidates=[ADAPTER]) is ADAPTER

    class Broken:
        name, value, group = "broken", "nowhere:ADAPTER", ENTRY_POINT_GROUP

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr(registry, "_entry_points", lambda: (Broken(),))
    monkeypatch.setattr(registry, "_loaded", {})
    monkeypatch.setattr(registry, "_failed", {})
    assert adapters() == {}
    with pytest.raises(TypeError, match=r"adapter 'broken' failed to load: ImportError: No module named 'nowhere'"):
        find_adapter(object())


def test_loaded_adapters_answer_without_a_scan_and_new_plugins_are_found(monkeypatch):
    class Late:
        name, value, group = "late", "somewhere:ADAPTER", ENTRY_POINT_GROUP

        def load(self):
            return ADAPTER

    scans = []
    installed = [Late()]

    def entry_points():
        scans.append(1)
        return tuple(installed)

    monkeypatch.setattr(registry, "_entry_points", entry_points)
    monkeypatch.setattr(registry, "_loaded", {})
    monkeypatch.setattr(registry, "_failed", {})
    assert find_adapter(NumpyNet()) is ADAPTER and len(scans) == 1
    assert find_adapter(NumpyNet()) is ADAPTER and len(scans) == 1  # answered by the loaded adapter
    with pytest.raises(TypeError):
        find_adapter(object())  # nothing loaded accepts it: the entry points are scanned again
    assert len(scans) > 1
