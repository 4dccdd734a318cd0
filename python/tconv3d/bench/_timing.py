"""Interleaved timing: two callables measured in alternation, so machine noise hits both alike."""
import time


def interleaved_ms(a, b, min_seconds, min_runs=3, statistic="median"):
    """Median (or fastest: statistic="min") milliseconds of a() and b(), each warmed up once (compilation excluded).

    On a machine that others load, the fastest run is the one least disturbed by them.
    """
    a()
    b()
    times_a, times_b = [], []
    start = time.perf_counter()
    while len(times_a) < min_runs or time.perf_counter() - start < min_seconds:
        for f, times in ((a, times_a), (b, times_b)):
            t0 = time.perf_counter()
            f()
            times.append((time.perf_counter() - t0) * 1e3)
        if len(times_a) >= 200:
            break
    pick = min if statistic == "min" else _median
    return pick(times_a), pick(times_b), len(times_a)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def per_call_us(f, n):
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1e6


def interleaved_ms_all(callables, min_seconds, min_runs=2, statistic="median", max_runs=200):
    """interleaved_ms for any number of callables: one call of each per round, each warmed up once first.

    Returns (milliseconds per callable, rounds). A callable of None is skipped (its time is None).
    """
    live = [f for f in callables if f is not None]
    for f in live:
        f()
    times = {id(f): [] for f in live}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_runs or time.perf_counter() - start < min_seconds:
        for f in live:
            t0 = time.perf_counter()
            f()
            times[id(f)].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        if rounds >= max_runs:
            break
    pick = min if statistic == "min" else _median
    return [None if f is None else pick(times[id(f)]) for f in callables], rounds
