"""Host-thread maps of the dense engine: results in order, programs built once before their reuse."""

import threading
import time

import pytest

from holejax.filtration import dense
from holejax.filtration.dense import parallel_map, parallel_map_programs


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(dense, "_cores", lambda batch: min(batch, 2))


def test_parallel_map_keeps_order(two_threads):
    assert parallel_map(lambda x: x + 1, list(range(20))) == list(range(1, 21))


def _recorder(duration):
    """``fn`` that sleeps ``duration(item)`` and logs ``(item, start, end, thread)``."""
    log, lock = [], threading.Lock()

    def fn(item):
        start = time.perf_counter()
        time.sleep(duration(item))
        with lock:
            log.append((item, start, time.perf_counter(), threading.get_ident()))
        return item * 10

    return fn, log


def test_programs_results_in_item_order(two_threads):
    items = list(range(12))
    programs = [i % 3 for i in items]
    fn, _ = _recorder(lambda item: 0.001 * (12 - item))
    assert parallel_map_programs(fn, items, programs) == [10 * i for i in items]


def test_first_item_of_a_program_finishes_before_its_others_start(two_threads):
    items = list(range(16))
    programs = ["a", "b", "a", "c", "b", "a", "c", "d"] * 2
    first = {p: items[programs.index(p)] for p in set(programs)}
    fn, log = _recorder(lambda item: 0.05 if item in first.values() else 0.005)
    parallel_map_programs(fn, items, programs)
    times = {item: (start, end) for item, start, end, _ in log}
    assert sorted(times) == items
    for item, program in zip(items, programs):
        if item != first[program]:
            assert times[item][0] >= times[first[program]][1], (item, program)


def test_builder_builds_in_turn_while_workers_compute(two_threads):
    # one builder and two workers: with nothing built, all three build ("a", "b",
    # "c"); "a" is built first, so the builder goes on to "d" while the workers,
    # once free, run the items of "a" beside it
    items = list(range(14))
    programs = ["a", "b", "c", "d"] + ["a"] * 10
    builds = {0: 0.05, 1: 0.15, 2: 0.15, 3: 0.25}
    fn, log = _recorder(lambda item: builds.get(item, 0.02))
    parallel_map_programs(fn, items, programs)
    times = {item: (start, end) for item, start, end, _ in log}
    thread = {item: ident for item, _, _, ident in log}
    assert times[1][0] < times[0][1] and times[2][0] < times[0][1]  # three builds at once
    assert thread[3] == thread[0] and times[3][0] < times[1][1]  # the builder goes on to "d"
    d_start, d_end = times[3]
    assert any(s < d_end and e > d_start for item, (s, e) in times.items() if item >= 4)
    workers = {thread[item] for item in range(4, 14)}
    assert len(workers) == 2 and thread[0] not in workers  # the workers, not the builder, ran "a"'s items


def test_programs_raise_the_first_error_and_stop(two_threads):
    started = []

    def fn(item):
        started.append(item)
        if item == 3:
            raise ValueError("cloud 3 is bad")
        time.sleep(0.01)
        return item

    with pytest.raises(ValueError, match="cloud 3 is bad"):
        parallel_map_programs(fn, list(range(40)), [0] * 40)
    assert len(started) < 40  # the threads stopped taking items


def test_programs_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="programs names 2 items; items holds 3"):
        parallel_map_programs(abs, [1, 2, 3], ["a", "b"])


def test_programs_one_thread_runs_in_order(monkeypatch):
    monkeypatch.setattr(dense, "_cores", lambda batch: 1)
    order = []
    parallel_map_programs(order.append, [3, 1, 2], ["x", "y", "x"])
    assert order == [3, 1, 2]


def test_prebuild_runs_on_the_builder_once_every_build_started(two_threads):
    items = list(range(8))
    programs = ["a", "b"] * 4
    fn, log = _recorder(lambda item: 0.02)
    ran = []
    prebuild = [lambda: ran.append(("scores", threading.get_ident(), time.perf_counter())),
                lambda: ran.append(("distances", threading.get_ident(), time.perf_counter()))]
    parallel_map_programs(fn, items, programs, prebuild)
    assert [name for name, _, _ in ran] == ["scores", "distances"]
    builder = ran[0][1]
    assert builder != threading.get_ident() and ran[1][1] == builder
    built = [end for item, _, end, ident in log if item in (0, 1) and ident == builder]
    assert built and ran[0][2] >= built[0]  # after the build the builder ran


def test_prebuild_errors_are_raised(two_threads):
    def broken():
        raise RuntimeError("prebuild failed")

    with pytest.raises(RuntimeError, match="prebuild failed"):
        parallel_map_programs(abs, [1, -2, 3], ["a", "a", "b"], [broken])


def test_prebuild_is_skipped_when_items_run_in_order(monkeypatch):
    monkeypatch.setattr(dense, "_cores", lambda batch: 1)
    ran = []
    assert parallel_map_programs(abs, [-1, 2], ["a", "b"], [lambda: ran.append(1)]) == [1, 2]
    assert ran == []
