"""``import holejax`` and its core stages never load torch, flax or bokeh."""

import subprocess
import sys

CORE = [
    "holejax",
    "holejax.store",
    "holejax.metrics",
    "holejax.filtration",
    "holejax.analysis",
    "holejax.perturb",
    "holejax.capture",
    "holejax.topology",
    "holejax.demo",
]


def modules_loaded_by(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_holejax_loads_no_framework():
    loaded = modules_loaded_by("import holejax")
    for heavy in ("torch", "flax", "bokeh", "jax", "xarray"):
        assert heavy not in loaded, f"import holejax loaded {heavy}"


def test_core_stages_load_no_framework():
    loaded = modules_loaded_by("\n".join(f"import {m}" for m in CORE))
    for heavy in ("torch", "flax", "bokeh", "optax"):
        assert heavy not in loaded, f"importing the core stages loaded {heavy}"


def test_public_names_resolve_without_framework():
    loaded = modules_loaded_by(
        "import holejax as hj\n"
        "[getattr(hj, name) for name in hj.__all__ if name != 'write_report']"
    )
    assert "torch" not in loaded and "flax" not in loaded and "bokeh" not in loaded
