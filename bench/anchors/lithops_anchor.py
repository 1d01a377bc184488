"""Anchors for reports/threads.md, measured in the same run as the cloud-thread benchmarks:
Lithops (localhost backend) spawn + join of no-op calls, and one round of its Redis-backed
multiprocessing Barrier with 8 parties. Prints one JSON object.

Usage: python3 lithops_anchor.py REDIS_PORT ROUNDS
"""
import json
import os
import statistics
import sys
import tempfile
import time

REDIS_PORT = int(sys.argv[1])
ROUNDS = int(sys.argv[2])
CONFIG = {
    "lithops": {"backend": "localhost", "storage": "localhost", "log_level": "ERROR"},
    "localhost": {"worker_processes": 8},
    "redis": {"host": "127.0.0.1", "port": REDIS_PORT},
}
# Lithops' multiprocessing module reads its Redis settings from the configuration file.
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config_file:
    json.dump(CONFIG, config_file)
os.environ["LITHOPS_CONFIG_FILE"] = config_file.name

import lithops  # noqa: E402  (after the configuration file is named)
from lithops import multiprocessing as lmp  # noqa: E402


def noop(_):
    return None


def spawn_join(calls):
    """Seconds to run `calls` no-op functions and collect their results."""
    executor = lithops.FunctionExecutor(config=CONFIG)
    started = time.perf_counter()
    executor.map(noop, range(calls))
    executor.get_result()
    elapsed = time.perf_counter() - started
    executor.clean()
    return elapsed


def barrier_rounds(barrier, rounds):
    """Each party waits `rounds` times; returns its round times in microseconds."""
    barrier.wait()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        barrier.wait()
        times.append((time.perf_counter() - started) * 1e6)
    return times


def barrier_round_us(parties, rounds):
    barrier = lmp.Barrier(parties)
    with lmp.Pool(processes=parties) as pool:
        results = pool.starmap(barrier_rounds, [(barrier, rounds)] * parties)
    return statistics.median(results[0])


if __name__ == "__main__":
    spawn = [spawn_join(100) for _ in range(max(1, ROUNDS // 2))]
    barrier = [barrier_round_us(8, 20) for _ in range(max(1, ROUNDS // 2))]
    print(json.dumps({"spawn_join_100_s": statistics.median(spawn), "barrier_round_us": statistics.median(barrier)}))
