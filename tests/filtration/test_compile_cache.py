"""The persistent compilation cache: a per-user folder by default, moved or disabled by HOLEJAX_CACHE_DIR."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

RUN = (
    "import sys, numpy as np, holejax as hj\n"
    "assert 'jax' not in sys.modules  # bare import holejax stays free of jax and of the cache\n"
    "import jax\n"
    "h = hj.h0(np.array([[0, 1, 4], [1, 0, 2], [4, 2, 0]], np.float32))\n"
    "print(h.deaths.tolist(), jax.config.jax_compilation_cache_dir)\n"
)


def _run(tmp_path, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "HOLEJAX_CACHE_DIR"}
    full["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    full.update(env)
    out = subprocess.run([sys.executable, "-c", RUN], env=full, capture_output=True, text=True,
                         timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def _entries(folder) -> list:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG_CACHE_HOME is the Linux default")
def test_default_folder_is_per_user_and_reused(tmp_path):
    folder = tmp_path / "user-cache" / "holejax" / "jax"
    line = _run(tmp_path)
    assert line == f"[1.0, 2.0] {folder}"
    first = _entries(folder)
    assert first, "the first process writes its compiled programs"
    _run(tmp_path)
    assert _entries(folder) == first  # the second process found every program there


def test_variable_moves_or_disables_the_cache(tmp_path):
    moved = tmp_path / "elsewhere"
    assert _run(tmp_path, HOLEJAX_CACHE_DIR=str(moved)) == f"[1.0, 2.0] {moved}"
    assert _entries(moved) and not (tmp_path / "user-cache").exists()
    for off in ("", "off"):
        assert _run(tmp_path, HOLEJAX_CACHE_DIR=off) == "[1.0, 2.0] None"
    assert not (tmp_path / "user-cache").exists()


def test_set_compile_cache_checks_its_argument():
    import holejax as hj

    with pytest.raises(TypeError, match="path must be a folder .str or os.PathLike. or None; got int"):
        hj.set_compile_cache(3)
