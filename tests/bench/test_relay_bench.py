"""The frame-level guards of ``bench.relay_bench`` (judged again in the peak-hour benchmark), on made-up phase
results."""

from __future__ import annotations

from typing import Any

from bench.peak_bench import guard_targets
from bench.relay_bench import _gc_pauses, frame_guards


def phase(server_cpu: float, mode: str, *, added_p99: float | None = None) -> dict[str, Any]:
    """One repetition's result of a path, as the phases write it (CPU seconds per 1000 deltas)."""
    result: dict[str, Any] = {
        "failed_turns": 0,
        "cpu_seconds_per_1000_deltas": {"daphne" if mode == "relay" else "proxy": server_cpu},
    }
    if added_p99 is not None:
        result["added_ms"] = {"p99": added_p99}
    return result


def results(*, unpaced: tuple[float, float], paced: tuple[float, float], added: list[float]) -> dict[str, Any]:
    """Three repetitions; ``unpaced``/``paced``: (relay, proxy) server CPU per 1000 deltas."""
    return {
        "throughput": {
            "relay": [phase(unpaced[0], "relay")] * 3,
            "proxy": [phase(unpaced[1], "proxy")] * 3,
        },
        "latency": {
            "relay": [phase(paced[0], "relay", added_p99=ms) for ms in added],
            "proxy": [phase(paced[1], "proxy", added_p99=1.0)] * 3,
        },
    }


def test_the_cpu_guard_is_the_unpaced_phases_and_the_paced_ratio_is_reported_beside_it() -> None:
    # The baseline (0.040 vs 0.014-0.016 ms a delta) is the unpaced phase; the paced phase's 40 deltas a
    # turn carry the turn's fixed costs (3.1-4.9x the proxy's in the runs since).
    guards = frame_guards(results(unpaced=(0.050, 0.019), paced=(0.255, 0.063), added=[8.5, 46.0, 11.7]))
    assert guards["throughput_cpu_vs_proxy"] == 2.632
    assert guards["target_throughput_cpu_le_3x_proxy"] is True
    assert guards["latency_cpu_vs_proxy"] == 4.048
    assert not any(key.startswith("target_latency") for key in guards)
    assert guard_targets(guards) == {
        "frame guard: relay-added p99 per frame <= 10 ms (best repetition)": True,
        "frame guard: server CPU per delta <= 3x bare proxy, unpaced": True,
    }


def test_the_guards_fail_on_a_slow_relay() -> None:
    guards = frame_guards(results(unpaced=(0.070, 0.019), paced=(0.1, 0.063), added=[12.0, 46.0, 11.7]))
    assert guards["relay_added_p99_ms_best"] == 11.7
    assert set(guard_targets(guards).values()) == {False}


def test_each_repetition_reports_the_apps_longest_collector_pause_beside_its_p99() -> None:
    # The longest pause is the app's since its last read (the phase's start); the rest are differences.
    before = {"collections": 10, "generation_2": 1, "us_total": 5_000, "us_longest": 3_000}
    after = {"collections": 83, "generation_2": 2, "us_total": 230_200, "us_longest": 128_800}
    assert _gc_pauses(before, after) == {"collections": 73, "full": 1, "total_ms": 225.2, "longest_ms": 128.8}
    made = results(unpaced=(0.050, 0.019), paced=(0.255, 0.063), added=[4.8, 22.2, 5.4])
    for run, longest in zip(made["latency"]["relay"], [7.5, 128.8, 6.8], strict=True):
        run["gc_pauses"] = {"collections": 72, "full": int(longest > 100), "total_ms": 90.0, "longest_ms": longest}
    assert frame_guards(made)["relay_gc_longest_pause_ms_runs"] == [7.5, 128.8, 6.8]
