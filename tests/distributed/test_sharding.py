"""Batched kernels spread a batch over every local JAX device: two forced CPU devices, results as on one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

import holejax as hj
from holejax.distributed.sharding import batch_sharding, round_to_devices, shard_batch

METRICS = ["euclidean", "cosine", "mahalanobis"]


def clouds(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).normal(size=(batch, 40, 6)).astype(np.float32)


TWO_DEVICES = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    import holejax as hj
    from holejax.distributed.sharding import batch_sharding, shard_batch
    from test_sharding import METRICS, clouds

    assert jax.local_device_count() == 2, jax.local_devices()
    out = {}
    for batch in (5, 6):  # 5: the last slice is padded
        for metric in METRICS:
            D = hj.batched_pairwise_distances(clouds(batch), metric)
            out[f"{metric}-{batch}"] = np.asarray(D)
            out[f"{metric}-{batch}-split"] = tuple(D.sharding.spec) == ("batch",) and len(D.sharding.device_set) == 2
    placed = shard_batch(np.zeros((4, 3), np.float32))
    out["slices"] = np.array([s.data.shape[0] for s in placed.addressable_shards])
    np.savez(sys.argv[1], **out)
    """
)


def test_one_device_leaves_the_batch_alone():
    assert jax.local_device_count() == 1
    assert batch_sharding() is None and round_to_devices(5) == 5
    xs = clouds(3)
    assert shard_batch(xs) is xs


def test_two_devices_split_the_batch_and_give_the_one_device_results(tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip(),
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "two.npz"
    run = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(out)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    two = np.load(out)
    assert two["slices"].tolist() == [2, 2]  # one equal slice of the batch per device
    for batch in (5, 6):
        for metric in METRICS:
            one = np.asarray(hj.batched_pairwise_distances(clouds(batch), metric))
            assert two[f"{metric}-{batch}"].shape == one.shape
            assert np.array_equal(two[f"{metric}-{batch}"], one), (metric, batch)
    assert all(two[f"{metric}-6-split"] for metric in METRICS)  # the output stays split along the batch
