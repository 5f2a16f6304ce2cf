"""A bounded load test: N concurrent clients send the same request for T seconds; latency and failures.

    python -m serving.loadtest http://127.0.0.1:8501/v1/models/cnn_vision:predict --body=request.json \
        --clients=8 --seconds=20

Each client is a thread with its own keep-alive connection. A request fails on a connection error, a
timeout, or any status other than 200. Prints requests/second, p50/p99 latency and the failures.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import requests


def run_load(send: Callable[[requests.Session], requests.Response], clients: int = 8, seconds: float = 20.0,
             warmup: int = 2) -> dict:
    """Runs `send` in `clients` threads for `seconds`; returns rate, latency percentiles and failures."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = [0.0]
    # The clock starts when every client has warmed up (the barrier's action runs once, in one thread).
    start = threading.Barrier(clients + 1, action=lambda: deadline.__setitem__(0, time.perf_counter() + seconds))

    def client():
        session = requests.Session()
        for _ in range(warmup):  # connect and warm caches before the clock starts
            try:
                send(session)
            except requests.RequestException:
                pass
        start.wait()
        mine, bad = [], []
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            try:
                response = send(session)
                ok = response.status_code == 200
                if not ok:
                    bad.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except requests.RequestException as e:
                bad.append(f"{type(e).__name__}: {e}")
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"requests": len(latencies) + len(failures), "failures": len(failures), "failure_examples": failures[:3],
            "requests_per_second": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "clients": clients, "seconds": elapsed}


def summary(result: dict) -> str:
    """One line: rate, latency percentiles, counts."""
    return (f"{result['requests_per_second']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
            f"{result['requests']} requests, {result['failures']} failed ({result['clients']} clients, "
            f"{result['seconds']:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    """Runs the load test from the command line; exit code 1 if any request failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the full URL to POST to, e.g. .../v1/models/NAME:predict")
    parser.add_argument("--body", required=True, help="file holding the JSON request body")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    body = open(args.body, "rb").read()
    headers = {"Content-Type": "application/json"}
    result = run_load(lambda s: s.post(args.url, data=body, headers=headers, timeout=30), args.clients, args.seconds)
    print(summary(result))
    for example in result["failure_examples"]:
        print(f"  failure: {example}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
