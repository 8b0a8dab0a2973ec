"""The state benchmark's figure code: lag percentiles, hourly steady state, windows, dirty gists, keys per write."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import gist_log, state_plots, state_sync
from bench.gist_log import Write
from bench.state_figures import (
    FileSnapshot,
    LagTracker,
    Register,
    changed_files,
    dirty_gists,
    hourly_steady_state,
    lag_goal_s,
    lag_percentiles,
    max_in_window,
    namespace_of,
    quantile,
    rolling_lag,
    value_at,
    within_goal,
)
from cmdgate_local.gist_server import GistServer

ROOT = Path(__file__).resolve().parents[3]


def test_lag_percentiles_interpolate_between_closest_ranks() -> None:
    lags = [float(n) for n in range(1, 21)]  # 1..20
    figures = lag_percentiles(lags)
    assert figures == {"n": 20, "p50": 10.5, "p95": 19.05, "max": 20.0}
    assert quantile([7.0], 0.95) == 7.0
    assert lag_percentiles([]) == {"n": 0, "p50": None, "p95": None, "max": None}


def test_hourly_steady_state_is_the_hourly_write_limit_times_keys_per_write() -> None:
    assert hourly_steady_state(1.0) == 500
    assert hourly_steady_state(12.5) == 6250
    assert hourly_steady_state(3.0, writes_per_hour=100) == 300


def test_max_in_window_counts_the_busiest_window() -> None:
    assert max_in_window([0.0, 0.5, 1.0, 1.2, 5.0], 1.0) == 3  # 0.5, 1.0, 1.2
    # Writes exactly 1 s apart keep the 1 s spacing: never two in one window.
    assert max_in_window([0.0, 1.0, 2.0, 3.0], 1.0) == 1
    assert max_in_window([3.0, 0.0, 59.9, 60.0], 60.0) == 3  # unsorted input
    assert max_in_window([], 1.0) == 0


def test_namespace_is_the_part_before_the_first_dot_or_colon() -> None:
    assert namespace_of("team.settings") == "team"
    assert namespace_of("team:a.b") == "team"
    assert namespace_of("team.a:b") == "team"
    assert namespace_of("solo") == "solo"


def test_dirty_gists_count_distinct_shards_of_dirty_keys() -> None:
    registers = {
        "a.1": Register(3, 2, gist_id="g1", shard="a/0"),
        "a.2": Register(5, 4, gist_id="g1", shard="a/0"),  # same gist: counted once
        "a.3": Register(2, 1, shard="a/1"),  # not synced yet, its shard assigned
        "a.4": Register(2, 2, gist_id="g3", shard="a/2"),  # clean: its gist is not dirty
        "b.1": Register(1, 1, gist_id="g4", shard="b/0"),
    }
    assert dirty_gists(registers) == 2


def test_dirty_gists_without_a_shard_attribute_count_the_fewest_gists_per_namespace() -> None:
    registers = {f"a.k{i}": Register(2, 1) for i in range(120)}  # 120 dirty keys: ceil(120/50) = 3
    registers |= {"b:x": Register(1, 0), "b.y": Register(1, 1)}  # 1 dirty of namespace b
    registers |= {"c.z": Register(4, 1, shard="c/0")}  # a sharded one counts by its shard
    assert dirty_gists(registers) == 3 + 1 + 1
    assert dirty_gists(registers, keys_per_gist=1) == 120 + 1 + 1
    assert dirty_gists({"a.1": Register(1, 1)}) == 0


def test_changed_files_are_added_removed_or_changed() -> None:
    before = {"a.json": FileSnapshot(2, "v1"), "b.json": FileSnapshot(2, "v1"), "c.json": FileSnapshot(2, "v1")}
    after = {"a.json": FileSnapshot(2, "v2"), "b.json": FileSnapshot(2, "v1"), "d.json": FileSnapshot(2, "v1")}
    assert changed_files(before, after) == 3  # a changed, c removed, d added
    assert changed_files({}, after) == 3
    assert changed_files(after, after) == 0


def test_lag_tracker_settles_each_write_when_a_sample_shows_its_version_synced() -> None:
    tracker = LagTracker()
    tracker.wrote("k", 1, 10.0)
    tracker.wrote("k", 2, 11.0)
    tracker.wrote("other", 7, 12.0)
    assert tracker.observe({"k": Register(2, 1)}, 13.0) == 1
    assert tracker.lags == [(10.0, 3.0)]
    assert sorted(tracker.unsynced()) == [("k", 2, 11.0), ("other", 7, 12.0)]
    assert tracker.observe({"k": Register(3, 3), "other": Register(7, 6)}, 15.5) == 1
    assert tracker.lags == [(10.0, 3.0), (11.0, 4.5)]
    tracker.wrote("late", 1, 20.0)  # its 2xx came after the sample that already showed it synced
    tracker.observe({"late": Register(1, 1)}, 19.9)
    assert tracker.lags[-1] == (20.0, 0.0)
    assert tracker.has_pending()
    tracker.observe({"other": Register(7, 7)}, 30.0)
    assert not tracker.has_pending()


def test_lag_goal_per_write_uses_the_dirty_gists_when_it_was_written() -> None:
    dirty = [(0.0, 2), (10.0, 20)]
    assert value_at(dirty, -1.0) == 2
    assert value_at(dirty, 9.9) == 2
    assert value_at(dirty, 10.0) == 20
    assert lag_goal_s(2) == 7.0
    lags = [(1.0, 6.0), (2.0, 8.0), (11.0, 24.0), (12.0, 26.0)]  # goals 7, 7, 25, 25
    assert within_goal(lags, dirty) == 2


def test_rolling_lag_groups_writes_by_window() -> None:
    rows = rolling_lag([(100.0, 1.0), (105.0, 3.0), (112.0, 10.0)], start=100.0, window_s=10.0)
    assert rows == [(5.0, 2.0, 2.9, 3.0), (15.0, 10.0, 10.0, 10.0)]


def test_write_figures_count_keys_carried_by_method() -> None:
    writes = [
        Write(0.0, "POST", "g1", "s1", 50),
        Write(1.0, "PATCH", "g1", "s2", 3),
        Write(2.0, "PATCH", "g1", "s3", 5),
        Write(2.5, "PATCH", "g2", "s4", None),  # not read back: left out of the mean
    ]
    figures = state_sync.write_figures(writes)
    assert figures["by_method"] == {"POST": 1, "PATCH": 3}
    assert figures["keys_per_patch"] == 4.0
    assert figures["keys_per_post"] == 50.0
    assert figures["keys_carried"] == 58
    assert figures["writes_unread"] == 1
    assert figures["max_1s"] == 2
    assert figures["rate_per_min"] == 72.0  # 3 intervals in 2.5 s


@pytest.fixture
def gist_server() -> Iterator[GistServer]:
    server = GistServer(port=0).start()
    yield server
    server.stop()


def test_files_changed_per_write_are_read_back_from_the_gist_revisions(gist_server: GistServer) -> None:
    headers = {"Authorization": "Bearer sync-token"}
    with httpx.Client(base_url=gist_server.url, headers=headers, timeout=10) as client:
        before = gist_log.gist_stats(gist_server.url)
        files = {f"k{i}.json": {"content": f"v1 {i}"} for i in range(3)}
        gist = client.post("/gists", json={"files": files}).raise_for_status().json()
        other = client.post("/gists", json={"files": {"state.json": {"content": "x"}}}).raise_for_status().json()
        changes: dict[str, Any] = {"k0.json": {"content": "v2"}, "k2.json": None}
        client.patch(f"/gists/{gist['id']}", json={"files": changes}).raise_for_status()
        client.patch(f"/gists/{gist['id']}", json={"files": {"k1.json": {"content": "v1 1"}}}).raise_for_status()
        after = gist_log.gist_stats(gist_server.url)
    writes = gist_log.with_files_changed(gist_server.url, gist_log.writes_between(before, after))
    assert [(w.method, w.gist_id, w.files) for w in writes] == [
        ("POST", gist["id"], 3),
        ("POST", other["id"], 1),
        ("PATCH", gist["id"], 2),  # one changed, one deleted
        ("PATCH", gist["id"], 0),  # same content: a revision that carried nothing
    ]
    assert gist_log.keys_per_write(writes, "PATCH") == 1.0
    # The reads spent the benchmark's own budget, not the sync token's.
    limit = httpx.get(f"{gist_server.url}/gists/{gist['id']}", headers=headers).headers
    assert int(limit["x-ratelimit-used"]) == 5


def test_plots_are_asked_for_only_with_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_plots, "available", lambda: False)
    with pytest.raises(SystemExit) as exited:
        state_sync.parse(["--plots", "/tmp/plots"])
    assert exited.value.code == 2
    assert state_sync.parse([]).plots is None  # the figures alone need no matplotlib
    monkeypatch.setattr(state_plots, "available", lambda: True)
    assert state_sync.parse(["--write-docs"]).plots == state_sync.IMAGES


def test_defaults_and_quick_and_only() -> None:
    full = state_sync.parse([])
    assert (full.keys, full.namespaces, full.mix_clients, full.mix_keys, full.mix_seconds) == (1000, 10, 8, 1000, 180)
    assert full.scenarios == ["hot", "many", "mix"]
    quick = state_sync.parse(["--quick"])
    assert quick.seconds < full.seconds and quick.keys < full.keys and quick.mix_seconds < full.mix_seconds
    assert state_sync.parse(["--only", "mix", "--only", "hot"]).scenarios == ["hot", "mix"]
    assert state_sync.parse(["--mix-seconds", "0"]).scenarios == ["hot", "many"]


def test_draw_plots_the_scenarios_that_ran(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    drawn: list[tuple[str, Path]] = []
    monkeypatch.setattr(state_plots, "hot_key", lambda lat, clients, path: drawn.append(("hot", path)))
    monkeypatch.setattr(state_plots, "many_keys", lambda *a: drawn.append(("many", a[-1])))
    monkeypatch.setattr(state_plots, "steady_mix", lambda *a: drawn.append(("mix", a[-1])))
    figures: dict[str, Any] = {
        "args": state_sync.parse(["--only", "many"]),
        "hot": None,
        "mix": None,
        "many": {"series": [(1.0, 5)], "write_times": [0.5], "keys": 5, "last_write_s": 0.8},
    }
    assert state_sync.draw(figures, tmp_path) == {"many": tmp_path / state_plots.MANY_KEYS_PNG}
    assert drawn == [("many", tmp_path / state_plots.MANY_KEYS_PNG)]


class FigureWriter:
    """Keeps the figures the plot functions hand over instead of writing PNGs."""

    def __init__(self) -> None:
        self.saved: list[tuple[Any, Path]] = []

    def __call__(self, figure: Any, path: Path) -> None:
        self.saved.append((figure, path))


def test_plot_functions_draw_their_series() -> None:
    pytest.importorskip("matplotlib")  # requirements/bench.txt; `make bench-state` installs it
    writer = FigureWriter()
    state_plots.many_keys([(0.0, 0), (5.0, 40), (9.0, 100)], [1.0, 2.0, 3.5], 100, 4.0, Path("m.png"), save=writer)
    state_plots.steady_mix(
        [(100.0, 2.0), (101.0, 3.0), (115.0, 4.0)], [(100.5, 3), (110.0, 4)], 100.0, 20.0, Path("s.png"), save=writer
    )
    state_plots.hot_key([100.0, 200.0, 300.0, 900.0], 4, Path("h.png"), save=writer)
    assert [path.name for _, path in writer.saved] == ["m.png", "s.png", "h.png"]
    many, mix, hot = (figure for figure, _ in writer.saved)
    keys_axes, writes_axes = many.axes
    assert list(keys_axes.lines[0].get_ydata()) == [0, 40, 100]
    assert list(writes_axes.lines[0].get_ydata())[-1] == 3  # cumulative gist writes
    lag_axes, dirty_axes = mix.axes
    p50 = lag_axes.lines[0]
    assert list(p50.get_xdata()) == [5.0, 15.0] and list(p50.get_ydata()) == [2.5, 4.0]
    assert list(lag_axes.lines[3].get_ydata()) == [lag_goal_s(3), lag_goal_s(4)]
    assert list(dirty_axes.lines[0].get_ydata()) == [3, 4]
    assert sum(patch.get_height() for patch in hot.axes[0].patches) == 4
    assert math.isclose(hot.axes[0].lines[0].get_xdata()[0], 250.0)  # p50 marker


def test_plot_functions_write_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    state_plots.hot_key([100.0, 250.0, 300.0], 4, tmp_path / "img" / "h.png")
    assert (tmp_path / "img" / "h.png").read_bytes().startswith(b"\x89PNG")


def test_make_bench_state_installs_the_plot_dependencies_and_setup_does_not() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def dry(target: str) -> list[str]:
        # -B: as from a fresh clone (every stamp out of date); -n: print, run nothing.
        out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.splitlines()

    bench = dry("bench-state")
    install = next(i for i, line in enumerate(bench) if "pip install -q -r requirements/bench.txt" in line)
    run = next(i for i, line in enumerate(bench) if "-m bench.state_sync" in line)
    assert install < run
    assert bench[install].startswith(".venv/bin/pip")  # the dev venv the benchmark runs in
    assert not any("requirements/bench.txt" in line for line in dry("setup"))


def _many(**changes: Any) -> dict[str, Any]:
    many: dict[str, Any] = {
        "keys": 1000,
        "namespaces": 10,
        "puts": {"201": 1000},
        "write_s": 90.0,
        "last_write_s": 90.0,
        "put_p95": 800.0,
        "synced": 1000,
        "all_synced": True,
        "to_all_synced_s": 42.0,
        "polled_s": 42.5,
        "gists_created": 20,
        "sharded": 1000,
        "distinct_gists": 20,
        **state_sync.write_figures([Write(0.0, "POST", "g1", "s1", 50), Write(1.0, "PATCH", "g1", "s2", 10)]),
        "projected_more_s": None,
        "api_agrees": "10/10",
        "series": [(float(t), min(1000, t * 10)) for t in range(0, 140, 2)],
        "write_times": [95.0, 96.0],
    }
    return many | changes


def _mix(**changes: Any) -> dict[str, Any]:
    mix: dict[str, Any] = {
        "keys": 1000,
        "writes": 1500,
        "rate": 8.3,
        "statuses": {"200": 1500},
        "seconds": 180.2,
        "unsynced": 0,
        **lag_percentiles([1.0, 2.0, 30.0]),
        "dirty_mean": 12.3,
        "dirty_max": 18,
        "dirty_keys_mean": 40.1,
        "goal_s": 17.3,
        "goal_met": False,
        "within_own_goal": 2,
        "samples": 250,
        "sharded": 0,
        "keys_per_gist": 50,
        "scan_p95_s": 0.3,
        **state_sync.write_figures([Write(0.0, "PATCH", "g1", "s1", 8)]),
        "hourly_keys": 4000,
        "start": 0.0,
        "lags": [],
        "dirty": [],
    }
    return mix | changes


def test_the_section_shows_each_scenario_that_ran_and_its_goals() -> None:
    args = state_sync.parse(["--only", "many", "--only", "mix"])
    figures: dict[str, Any] = {
        "args": args,
        "elapsed_s": 500,
        "hot": None,
        "many": _many(),
        "mix": _mix(),
        "seed": None,
        "write_log": [0.0, 1.0, 2.5],
        "plots": {"many": state_sync.IMAGES / state_plots.MANY_KEYS_PNG, "mix": Path("/tmp/elsewhere/mix.png")},
    }
    text = state_sync.render(figures)
    assert "Hot key" not in text
    assert "**all 1000 keys synced 42.0 s after the last write** (goal <= 60 s: met)" in text
    assert "gists created: **20**, gist writes: **2** {'POST': 1, 'PATCH': 1}" in text
    assert "keys carried per gist write: 30.0 (POST 50.0, PATCH 10.0;" in text
    assert "**p95 27.2 s**" in text
    assert "goal p95 <= 12.3 x 1 s + 5 s = 17.3 s: **missed**" in text
    assert "no register carries a shard attribute: ceil(dirty keys of a namespace / 50)" in text
    assert "**4000 key syncs/h** (500 x 8.0 keys per gist PATCH)" in text
    assert "![Many keys: keys synced and cumulative gist writes over time](img/state-many-keys.png)" in text
    assert "mix.png" not in text  # a plot outside docs/img/ is not linked from the docs
    assert "--only hot" in text  # how to run each scenario

    figures["many"] = _many(all_synced=False, synced=400, projected_more_s=600, to_all_synced_s=None)
    text = state_sync.render(figures)
    assert "**400 of 1000 keys synced** 42.5 s after the last write (bound 180 s reached; goal <= 60 s: missed;" in text
    assert "the rest would take about 600 s more" in text


def test_the_hot_key_part_shows_the_ratio_to_echo_and_the_retries() -> None:
    figures: dict[str, Any] = {
        "args": state_sync.parse(["--only", "hot"]),
        "elapsed_s": 200,
        "echo": {"ok": 600, "seconds": 60.0, "rps": 10.0, "statuses": {"200": 600}},
        "hot": {
            "key": "bench.hot.x",
            "writes": 480,
            "contention": 1,
            "statuses": {"200": 480, "409 STATE_CONTENTION": 1},
            "seconds": 60.0,
            "rate": 8.0,
            **state_sync.percentiles([100.0, 200.0, 300.0]),
            "latencies": [100.0, 200.0, 300.0],
            "catch_up_s": 1.2,
        },
        "hot_gist_writes": 50,
        "hot_gist_requests": 52,
        "calls": {3: 400, 4: 80},
        "ops": {"dynamodb.GetItem": 1.0, "dynamodb.TransactWriteItems": 1.25},
        "delays": [1.0, 2.0],
        "many": None,
        "mix": None,
        "seed": None,
        "write_log": [],
        "plots": {"hot": state_sync.IMAGES / state_plots.HOT_KEY_PNG},
    }
    text = state_sync.render(figures)
    assert "**8.0 writes/s** = **0.80x echo** (goal >= 0.8) = **8.0x** the gist budget" in text
    assert "0.25 lost races retried inside the api per PATCH" in text
    assert "](img/state-hot-key-latency.png)" in text
    assert "Many keys" not in text and "Steady mix" not in text
