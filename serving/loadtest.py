"""A bounded load test: N concurrent clients send the same request for T seconds; latency and failures.

    python -m serving.loadtest http://127.0.0.1:8501/v1/models/cnn_vision:predict --body=request.json \
        --clients=8 --seconds=20

Each client is a thread with its own keep-alive connection. A request fails on a connection error, a
timeout, or any status other than 200. Prints requests/second, p50/p99 latency and the failures.
"""

from __future__ import annotations

import argparse
import http.client
import json as json_module
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import requests
import urllib3

# What a failed call raises: requests' errors, and the socket and protocol errors of Connection.
ERRORS = (requests.RequestException, OSError, http.client.HTTPException)


@dataclass
class Response:
    """The part of requests' Response a load test reads."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json_module.loads(self.content)


class _NoDelay:
    """Sets TCP_NODELAY on every (re)connection of the http.client connection it is mixed into."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPNoDelay(_NoDelay, http.client.HTTPConnection):
    pass


class _HTTPSNoDelay(_NoDelay, http.client.HTTPSConnection):
    pass


class Connection:
    """A keep-alive HTTP/1.1 client with the `post` of a requests.Session, on the standard library's http.client.

    The load generator shares the CPU with the server it measures: a call costs about 120 us of CPU here
    against requests' 650 us (measured at 8 clients on this repository's 2-core machine), so the server rows
    measure the server. One per client thread; after an error it reconnects on the next call. TCP_NODELAY
    is set, as requests sets it, so a body sent after its headers is not held back for the server's ACK.
    """

    def __init__(self):
        self._connections: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def post(self, url: str, data: bytes | str | None = None, json=None, files: dict | None = None,
             headers: dict | None = None, timeout: float = 60.0) -> Response:
        """POSTs `data` (bytes), `json` (any JSON value) or `files` ({field: (name, bytes)}, multipart)."""
        headers = dict(headers or {})
        if json is not None:
            data, headers["Content-Type"] = json_module.dumps(json).encode(), "application/json"
        elif files is not None:
            data, headers["Content-Type"] = urllib3.encode_multipart_formdata(files)
        parts = urllib.parse.urlsplit(url)
        https = parts.scheme == "https"
        key = (parts.scheme, parts.hostname, parts.port or (443 if https else 80))
        connection = self._connections.get(key)
        if connection is None:
            connection = (_HTTPSNoDelay if https else _HTTPNoDelay)(*key[1:], timeout=timeout)
            self._connections[key] = connection
        connection.timeout = timeout  # for a reconnection (after a server's Connection: close)
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            connection.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""),
                               data.encode() if isinstance(data, str) else data, headers)
            answer = connection.getresponse()
            return Response(answer.status, answer.read())
        except ERRORS:
            connection.close()
            del self._connections[key]
            raise

    def close(self) -> None:
        """Closes every connection."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def run_load(send: Callable[[Connection], Response], clients: int = 8, seconds: float = 20.0, warmup: int = 2,
             connect: Callable[[], Connection | requests.Session] = Connection) -> dict:
    """Runs `send` in `clients` threads for `seconds`, each with its own `connect()` (a Connection, or a
    requests.Session); returns rate, latency percentiles and failures."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = [0.0]
    # The clock starts when every client has warmed up (the barrier's action runs once, in one thread).
    start = threading.Barrier(clients + 1, action=lambda: deadline.__setitem__(0, time.perf_counter() + seconds))

    def client():
        session = connect()
        for _ in range(warmup):  # connect and warm caches before the clock starts
            try:
                send(session)
            except Exception:  # noqa: BLE001 - counted when the clock runs; a client must reach the barrier
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
            except Exception as e:  # noqa: BLE001 - any failure of a call is a failed request, not a dead client
                bad.append(f"{type(e).__name__}: {e}")
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
        if hasattr(session, "close"):
            session.close()
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
