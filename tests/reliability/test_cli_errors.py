"""Every user error of the command line is one line on stderr and exit status 2, found before any work."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import holejax as hj
from holejax.cli import main
from holejax.store import ActivationWriter, LayerSpec, write_results


def write_store(path, X, labels=None):
    n = X.shape[1]
    w = ActivationWriter.create(
        path, [LayerSpec("fc", (X.shape[2],))], n, perturbations=["clean", "noise"][: len(X)], labels=labels,
        attrs={"framework": "test", "model_class": "Fake"},
    )
    for pi, pert in enumerate(w.pending()):
        w.write_batch(pert, 0, {"fc": X[pi]})
    return w.finish()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny activation store, its results, a topology-like results store and a stray folder."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    X = (rng.normal(size=(2, 20, 3)) + 4 * y[None, :, None]).astype(np.float32)
    write_store(root / "acts.zarr", X, labels=y)
    study = hj.analyze(hj.open_activations(root / "acts.zarr"), metrics=["euclidean"])
    write_results(study, root / "results.zarr")
    orphan = study.copy()
    orphan.attrs = {**study.attrs, "source": ""}
    write_results(orphan, root / "orphan.zarr")
    topo = xr.Dataset({"np": (("layer",), np.ones(1))}, coords={"layer": ["fc"]}, attrs={"content": "topology"})
    write_results(topo, root / "topology.zarr")
    (root / "stray").mkdir()
    (root / "stray" / "keep.txt").write_text("mine")
    (root / "old.html").write_text("old")
    return root


def fails(capsys, *argv) -> str:
    """Run the CLI in-process; assert exit status 2 and one line on stderr; return it."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("holejax"), err
    return lines[0]


@pytest.fixture
def no_analysis(monkeypatch):
    """Make any analysis or report an immediate failure: errors must come before the work."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(hj, "analyze", forbidden)
    monkeypatch.setattr(hj, "write_report", forbidden)


def test_bad_flag_before_the_command_is_named():
    proc = subprocess.run([sys.executable, "-m", "holejax.cli", "--bogus"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "'--bogus'" in proc.stderr and "holejax analyze" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "no command given"),
        (["frob"], "invalid choice: 'frob'"),
        (["analyze", "x.zarr"], "required: -o/--output"),
        (["analyze", "x.zarr", "-o", "r.zarr", "--metrc", "cosine"], r"--metrc -> --metric"),
        (["analyze", "x.zarr", "-o", "r.zarr", "--bogus"], "unknown argument(s) --bogus"),
        (["analyze", "x.zarr", "-o", "r.zarr", "--metric", "cosin"], "Did you mean 'cosine'"),
        (["analyze", "x.zarr", "-o", "r.zarr", "--metric", "cosine", "--metric", "cosine"], "twice"),
        (["demo", "--seed", "abc"], "invalid int value: 'abc'"),
    ],
)
def test_argument_errors(capsys, no_analysis, argv, expected):
    line = fails(capsys, *argv)
    assert expected in line
    assert "--help" in line or "Did you mean" in line or "once" in line


def test_analyze_refuses_an_existing_output_before_the_analysis(capsys, files, no_analysis):
    line = fails(capsys, "analyze", files / "acts.zarr", "-o", files / "results.zarr")
    assert "already exists" in line and "--overwrite" in line


def test_analyze_overwrite_replaces_only_a_results_store(capsys, files, no_analysis):
    line = fails(capsys, "analyze", files / "acts.zarr", "-o", files / "stray", "--overwrite")
    assert "not a holejax results store" in line
    assert (files / "stray" / "keep.txt").read_text() == "mine"


def test_analyze_refuses_to_write_over_its_input(capsys, files, no_analysis):
    line = fails(capsys, "analyze", files / "acts.zarr", "-o", files / "acts.zarr", "--overwrite")
    assert "is the activation store itself" in line
    assert hj.open_activations(files / "acts.zarr") is not None


def test_analyze_output_in_a_missing_folder(capsys, files, no_analysis):
    line = fails(capsys, "analyze", files / "acts.zarr", "-o", files / "nowhere" / "r.zarr")
    assert "does not exist" in line and "create it" in line


def test_analyze_missing_or_foreign_store(capsys, files, no_analysis):
    line = fails(capsys, "analyze", files / "missing.zarr", "-o", files / "r1.zarr")
    assert line.startswith("holejax analyze: error: STORE") and "missing.zarr" in line
    line = fails(capsys, "analyze", files / "results.zarr", "-o", files / "r1.zarr")
    assert "STORE" in line and "results.zarr" in line
    assert not (files / "r1.zarr").exists()


def test_a_failed_library_check_during_the_work_is_one_line(capsys, files):
    # four samples on one axis: the Ledoit-Wolf covariance is singular, an error naming the layer
    flat = np.zeros((1, 4, 3), np.float32)
    flat[0, :, 0] = [1, -1, 1, -1]
    write_store(files / "flat.zarr", flat)
    line = fails(capsys, "analyze", files / "flat.zarr", "-o", files / "r2.zarr", "--metric", "mahalanobis")
    assert "singular" in line and "layer 'fc'" in line and "covariance='oas'" in line
    assert not (files / "r2.zarr").exists()


def test_report_errors(capsys, files, no_analysis):
    line = fails(capsys, "report", files / "missing.zarr", "-o", files / "a.html")
    assert "RESULTS" in line and "missing.zarr" in line
    line = fails(capsys, "report", files / "acts.zarr", "-o", files / "a.html")
    assert "RESULTS" in line
    line = fails(capsys, "report", files / "topology.zarr", "-o", files / "a.html")
    assert "topology summary" in line and "--topology" in line
    line = fails(capsys, "report", files / "orphan.zarr", "-o", files / "a.html")
    assert "--activations STORE" in line
    line = fails(capsys, "report", files / "results.zarr", "-o", files / "a.html", "--activations", files / "gone.zarr")
    assert "--activations" in line and "gone.zarr" in line
    line = fails(capsys, "report", files / "results.zarr", "-o", files / "a.html", "--topology", files / "results.zarr")
    assert "--topology" in line and "not a topology results store" in line
    line = fails(capsys, "report", files / "results.zarr", "-o", files / "old.html")
    assert "already exists" in line and "--overwrite" in line
    assert (files / "old.html").read_text() == "old"
    line = fails(capsys, "report", files / "results.zarr", "-o", files / "stray", "--overwrite")
    assert "is a folder" in line
    line = fails(capsys, "report", files / "results.zarr", "-o", files / "nowhere" / "a.html")
    assert "does not exist" in line


def test_demo_output_that_is_a_file(capsys, files, no_analysis):
    line = fails(capsys, "demo", "-o", files / "old.html")
    assert "is a file" in line


def test_traceback_flag_shows_the_error(files):
    with pytest.raises(Exception, match="already exists"):
        main(["--traceback", "analyze", str(files / "acts.zarr"), "-o", str(files / "results.zarr")])
    with pytest.raises(Exception, match="already exists"):
        main(["analyze", str(files / "acts.zarr"), "-o", str(files / "results.zarr"), "--traceback"])


def test_valid_commands_still_work(capsys, files):
    assert main(["analyze", str(files / "acts.zarr"), "-o", str(files / "new.zarr"), "--metric", "cosine"]) == 0
    assert list(hj.open_results(files / "new.zarr")["metric"].values) == ["cosine"]
    assert main(["report", str(files / "new.zarr"), "-o", str(files / "new.html")]) == 0
    assert "<script" in (files / "new.html").read_text()
    assert main(["report", str(files / "new.zarr"), "-o", str(files / "new.html"), "--overwrite"]) == 0
    assert "results written to" in capsys.readouterr().out


def test_library_warnings_are_one_line(files):
    # a zero row has no direction: cosine warns about it
    X = np.random.default_rng(5).normal(size=(1, 12, 3)).astype(np.float32)
    X[0, 4] = 0
    write_store(files / "zero.zarr", X)
    proc = subprocess.run(
        [sys.executable, "-m", "holejax.cli", "analyze", str(files / "zero.zarr"), "-o", str(files / "zero-r.zarr"),
         "--metric", "cosine"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warned and all(line.startswith("holejax analyze: warning: ") for line in warned), proc.stderr
    assert "zero vectors" in warned[0] and "warnings.warn" not in proc.stderr


def test_report_with_activations_of_another_store(capsys, files):
    rng = np.random.default_rng(6)
    write_store(files / "other.zarr", (rng.normal(size=(2, 20, 3))).astype(np.float32))
    line = fails(capsys, "report", files / "results.zarr", "-o", files / "mixed.html", "--activations",
                 files / "other.zarr")
    assert "another activation store" in line
    assert not (files / "mixed.html").exists()
