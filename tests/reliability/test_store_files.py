"""holejax deletes only what it created in the call: files next to the output are never touched."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import holejax as hj
from holejax.store import ActivationWriter, LayerSpec, StoreError, open_results, write_results


def results() -> xr.Dataset:
    return xr.Dataset(
        {"purity": (("perturbation", "layer"), np.array([[1.0, 0.5]]))},
        coords={"perturbation": ["clean"], "layer": ["a", "b"]},
    )


def users_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


def test_write_results_leaves_a_users_partial_folder_alone(tmp_path):
    partial = users_folder(tmp_path / "r.zarr.partial")
    write_results(results(), tmp_path / "r.zarr")
    assert (partial / "notes.txt").read_text() == "mine"
    assert open_results(tmp_path / "r.zarr")["purity"].shape == (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr", "r.zarr.partial"]  # nothing of ours left


def test_a_failed_write_results_removes_only_its_own_temporary_folder(tmp_path, monkeypatch):
    partial = users_folder(tmp_path / "r.zarr.partial")

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", explode)
    with pytest.raises(OSError, match="disk full"):
        write_results(results(), tmp_path / "r.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr.partial"]
    assert (partial / "notes.txt").read_text() == "mine"


def test_overwrite_refuses_a_folder_that_is_not_a_results_store_before_any_work(tmp_path, monkeypatch):
    target = users_folder(tmp_path / "r.zarr")
    monkeypatch.setattr(xr.Dataset, "to_zarr", lambda *a, **k: pytest.fail("wrote before checking the target"))
    with pytest.raises(StoreError, match="refusing to overwrite.*not a holejax results store"):
        write_results(results(), target, mode="overwrite")
    assert (target / "notes.txt").read_text() == "mine"


def test_overwrite_keeps_the_old_results_until_the_new_ones_are_written(tmp_path, monkeypatch):
    write_results(results(), tmp_path / "r.zarr")
    monkeypatch.setattr(xr.Dataset, "to_zarr", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_results(results() * 0, tmp_path / "r.zarr", mode="overwrite")
    monkeypatch.undo()
    np.testing.assert_array_equal(open_results(tmp_path / "r.zarr")["purity"].values, [[1.0, 0.5]])


def test_a_failed_store_creation_removes_only_the_folder_it_created(tmp_path, monkeypatch):
    import zarr

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zarr.Group, "create_array", explode)
    with pytest.raises(OSError, match="disk full"):
        ActivationWriter.create(tmp_path / "acts.zarr", [LayerSpec("fc", (3,))], 4)
    assert not (tmp_path / "acts.zarr").exists()
    (tmp_path / "empty.zarr").mkdir()  # a folder the user made: emptied again, not deleted
    with pytest.raises(OSError, match="disk full"):
        ActivationWriter.create(tmp_path / "empty.zarr", [LayerSpec("fc", (3,))], 4)
    assert (tmp_path / "empty.zarr").is_dir() and not any((tmp_path / "empty.zarr").iterdir())


def test_write_report_leaves_a_users_partial_file_alone(tmp_path, monkeypatch):
    import holejax.report.html as html

    monkeypatch.setattr(html, "report_html", lambda study, acts, title=None, **options: "<html>report</html>")
    study, acts = xr.Dataset(), xr.Dataset()  # the file handling alone: the page itself is stubbed
    (tmp_path / "r.html.partial").write_text("mine")
    hj.write_report(study, acts, tmp_path / "r.html")
    assert (tmp_path / "r.html.partial").read_text() == "mine"
    assert (tmp_path / "r.html").read_text() == "<html>report</html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.html.partial"]


def test_a_failed_write_report_leaves_no_file_of_its_own(tmp_path, monkeypatch):
    import holejax.report.html as html

    monkeypatch.setattr(html, "report_html", lambda study, acts, title=None, **options: "<html>report</html>")
    monkeypatch.setattr(html.Path, "replace", lambda self, target: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        hj.write_report(xr.Dataset(), xr.Dataset(), tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []
