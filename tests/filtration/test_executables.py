"""Executables kept between processes: a later process runs holejax's programs without tracing them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import holejax as hj
from holejax import _executables
from holejax._cache import configure_compile_cache
from holejax._executables import KEEP_FINGERPRINTS, fingerprint, store_folder, stored_jit
from holejax.filtration import dense

RUN = """
import json, logging, re
import numpy as np
import jax
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("jax").addHandler(Keep())
jax.config.update("jax_log_compiles", True)
import holejax as hj
X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
h = hj.h0(np.asarray(hj.pairwise_distances(X, "cosine")))
g = hj.h0_from_points(X, "geodesic", k=5)
t = hj.h0_from_points(X, "euclidean", engine="tiled")
# the programs built for the store carry the fingerprint in their names: "_h0_jit_0123456789ab"
traced = sorted({re.sub("_[0-9a-f]{12}$", "", m.split()[2]) for m in records if m.startswith("Finished tracing")})
print(json.dumps({"h0": h.deaths.tolist(), "geodesic": g.deaths.tolist(), "tiled": t.deaths.tolist(),
                  "traced": traced}))
"""
PROGRAMS = {"_kernel_program", "_h0_jit", "_kruskal_rows", "knn", "_nearest_outside", "summary"}


def _process(tmp_path, cache: str, fingerprint: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HOLEJAX_CACHE_DIR"}
    env |= {"HOLEJAX_CACHE_DIR": cache, "XDG_CACHE_HOME": str(tmp_path / "user-cache")}
    run = RUN
    if fingerprint is not None:  # as another holejax (another release, an edited file) would
        run = f"import holejax._executables as e\ne._PROCESS['fingerprint'] = {fingerprint!r}\n" + RUN
    out = subprocess.run([sys.executable, "-c", run], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _executable_files(cache) -> list:
    return sorted((cache / "executables").rglob("*.jaxexe"))


def test_a_later_process_runs_every_program_without_tracing_it(tmp_path):
    cache = tmp_path / "cache"
    first = _process(tmp_path, str(cache))
    assert PROGRAMS <= set(first["traced"])
    files = _executable_files(cache)
    assert len(files) >= len(PROGRAMS)
    later = _process(tmp_path, str(cache))
    assert not PROGRAMS & set(later["traced"]), later["traced"]
    for key in ("h0", "geodesic", "tiled"):
        assert later[key] == first[key]  # the same executables: bit for bit
    assert _executable_files(cache) == files


def test_files_that_do_not_load_are_compiled_again_and_replaced(tmp_path):
    cache = tmp_path / "cache"
    first = _process(tmp_path, str(cache))
    files = _executable_files(cache)
    files[0].write_bytes(b"not an executable")
    files[1].write_bytes(files[1].read_bytes()[:100])  # truncated
    again = _process(tmp_path, str(cache))
    assert 1 <= len(PROGRAMS & set(again["traced"])) <= 2  # the two programs, built again
    assert _results(again) == _results(first)
    assert not PROGRAMS & set(_process(tmp_path, str(cache))["traced"])  # replaced by loadable files


def _results(process: dict) -> dict:
    return {k: process[k] for k in ("h0", "geodesic", "tiled")}


def test_another_holejax_compiles_its_own_programs_and_stores_them(tmp_path):
    cache = tmp_path / "cache"
    first = _process(tmp_path, str(cache))
    other = _process(tmp_path, str(cache), fingerprint="f" * 32)
    # JAX's cache holds the first holejax's programs under other names: all compiled again
    assert PROGRAMS <= set(other["traced"])
    assert len(list((cache / "executables" / ("f" * 32)).glob("*.jaxexe"))) >= len(PROGRAMS)
    later = _process(tmp_path, str(cache), fingerprint="f" * 32)
    assert not PROGRAMS & set(later["traced"]) and _results(later) == _results(other) == _results(first)


def test_a_store_removed_by_hand_is_written_again_with_whole_executables(tmp_path):
    # JAX's cache still holds the programs; executables read from there lack their code once
    # serialized ("Function ... not found" when run after loading), so they are compiled again
    cache = tmp_path / "cache"
    first = _process(tmp_path, str(cache))
    for path in _executable_files(cache):
        path.unlink()
    again = _process(tmp_path, str(cache))
    assert PROGRAMS <= set(again["traced"]) and len(_executable_files(cache)) >= len(PROGRAMS)
    later = _process(tmp_path, str(cache))
    assert not PROGRAMS & set(later["traced"])
    assert _results(later) == _results(again) == _results(first)


LAPACK = """
import json
import numpy as np
import holejax as hj
X = np.random.default_rng(1).normal(size=(60, 12)).astype(np.float32)
out = {f"{m}-{c}": np.asarray(hj.pairwise_distances(X, m, components=c)).tolist()
       for m in ("mahalanobis", "density_mahalanobis") for c in (None, 6)}
print(json.dumps(out))
"""


def test_programs_with_custom_calls_are_not_stored(tmp_path):
    # JAX sets LAPACK up while it lowers an SVD; a loaded program would call it unset (a segfault)
    env = {k: v for k, v in os.environ.items() if k != "HOLEJAX_CACHE_DIR"}
    env["HOLEJAX_CACHE_DIR"] = str(tmp_path / "cache")
    runs = [subprocess.run([sys.executable, "-c", LAPACK], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr[-3000:]
    assert runs[0].stdout == runs[1].stdout
    stored = _executable_files(tmp_path / "cache")
    assert stored  # the density normalisation has no custom call
    from holejax.metrics.batch import cloud_distances_arguments
    from holejax.metrics.pairwise import _kernel_program
    from holejax.metrics.registry import get_metric, resolve_params

    X = np.random.default_rng(1).normal(size=(60, 12)).astype(np.float32)
    spec = get_metric("mahalanobis")
    full = resolve_params(spec, {"components": 6}, *X.shape)
    clouds, static, arrays = cloud_distances_arguments(X[None], "mahalanobis", spec, full)
    lowered = _kernel_program.lower(clouds[0], "mahalanobis", static, arrays)
    assert "custom_call" in lowered.as_text()  # what the test is about: principal components call LAPACK's SVD


def test_nothing_is_stored_when_the_cache_is_off(tmp_path):
    result = _process(tmp_path, "off")
    assert PROGRAMS <= set(result["traced"])
    assert not any(tmp_path.rglob("*.jaxexe")) and not (tmp_path / "user-cache").exists()


@pytest.fixture
def empty_cache(tmp_path):
    """An empty cache folder for this test (restored afterwards)."""
    before = configure_compile_cache()
    hj.set_compile_cache(tmp_path / "cache")
    yield tmp_path / "cache"
    hj.set_compile_cache(before)


@stored_jit(static_argnames="power")
def _moment(x, power):
    return jnp.mean(x**power)


def test_programs_are_told_apart_by_static_arguments_types_and_options():
    x = np.arange(6, dtype=np.float32)
    before = _moment.cache_size()
    assert float(_moment(x, power=2)) == pytest.approx(np.mean(x**2))
    assert float(_moment(x, 3)) == pytest.approx(np.mean(x**3))  # positional static argument
    assert float(_moment(x[:4], power=2)) == pytest.approx(np.mean(x[:4] ** 2))
    assert int(_moment(np.arange(4, dtype=np.int32), power=2)) == 3  # mean of an int array: float
    assert _moment.cache_size() - before == 4
    assert float(_moment(x, power=2)) == pytest.approx(np.mean(x**2))
    assert _moment.cache_size() - before == 4  # the same program again
    with jax.enable_x64(True):
        assert _moment(x.astype(np.float64), power=2).dtype == np.float64
    assert _moment(x.astype(np.float64), power=2).dtype == np.float32
    assert _moment.cache_size() - before == 5


def test_transformations_and_debugging_options_go_to_jit():
    x = np.arange(1, 5, dtype=np.float32)
    before = _moment.cache_size()
    assert float(jax.jit(lambda v: _moment(v, power=2))(x)) == pytest.approx(7.5)
    np.testing.assert_allclose(jax.vmap(lambda v: _moment(v, power=1))(x[:, None]), x)
    np.testing.assert_allclose(jax.grad(lambda v: _moment(v, power=2))(x), 2 * x / 4)
    assert _moment.cache_size() == before
    with jax.debug_nans(True), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # JAX's de-optimized rerun, before it raises
        with pytest.raises(FloatingPointError):
            _moment(jnp.float32([-1.0]), power=0.5)


def test_functions_outside_holejax_are_not_written(empty_cache):
    _moment(np.arange(7, dtype=np.float32), power=2)
    assert not any(empty_cache.rglob("*.jaxexe"))


def test_one_thread_builds_a_program_while_the_others_wait(empty_cache, monkeypatch):
    builds = []
    build = dense._h0_jit._load_or_build

    def counted(*args):
        builds.append(threading.current_thread().name)
        return build(*args)

    monkeypatch.setattr(dense._h0_jit, "_load_or_build", counted)
    monkeypatch.setattr(dense._h0_jit, "_executables", {})  # none built in this process yet
    D = np.abs(np.subtract.outer(np.arange(23.0), np.arange(23.0))).astype(np.float32)
    barrier = threading.Barrier(4)
    results = [None] * 4

    def run(i):
        barrier.wait()
        results[i] = np.asarray(dense._h0_jit(D, "prim").deaths)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert all(np.array_equal(r, np.ones(22, np.float32)) for r in results)
    assert len(list(empty_cache.rglob("*.jaxexe"))) == 1


def test_old_fingerprint_folders_are_removed(empty_cache, monkeypatch):
    root = empty_cache / "executables"
    for i in range(KEEP_FINGERPRINTS + 2):
        (root / f"old{i}").mkdir(parents=True)
        os.utime(root / f"old{i}", (1000.0 + i, 1000.0 + i))
    monkeypatch.setattr(dense._h0_jit, "_executables", {})  # none built in this process yet
    dense._h0_jit(np.zeros((29, 29), np.float32), "prim")
    kept = sorted(p.name for p in root.iterdir())
    assert fingerprint() in kept and len(kept) == KEEP_FINGERPRINTS
    assert kept == sorted([fingerprint()] + [f"old{i}" for i in range(3, KEEP_FINGERPRINTS + 2)])
    assert store_folder() == root / fingerprint()


def test_the_fingerprint_follows_xla_flags(monkeypatch):
    now = fingerprint()
    monkeypatch.delitem(_executables._PROCESS, "fingerprint")
    monkeypatch.setenv("XLA_FLAGS", (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_fast_math=false").strip())
    assert fingerprint() != now


def test_a_failed_write_leaves_no_file_and_the_result_stands(empty_cache, monkeypatch):
    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dense._h0_jit, "_executables", {})
    monkeypatch.setattr(_executables.os, "replace", full_disk)
    r = dense._h0_jit(np.zeros((31, 31), np.float32), "prim")
    assert np.array_equal(np.asarray(r.deaths), np.zeros(30, np.float32))
    assert not [p for p in (empty_cache / "executables").rglob("*") if p.is_file()]
