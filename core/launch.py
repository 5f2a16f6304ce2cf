"""Starts N worker processes on this machine, each with its own TF_CONFIG, for multi-worker training.

    python -m core.launch --workers=2 -- python -m projects.cnn_vision.train \
        --gin_file=projects/cnn_vision/configs/smoke.gin --model_dir=/tmp/mw

Each worker gets a free port on 127.0.0.1 and `--strategy=multi_worker_mirrored` unless the command
names a strategy. Output lines are prefixed with the worker index. If one worker fails, the others
are stopped and the launcher exits with that worker's exit code. On a real cluster, set TF_CONFIG
on each machine yourself and run the same command there; nothing else changes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app, flags

flags.DEFINE_integer("workers", 2, "Number of worker processes to start.")
flags.DEFINE_string("host", "127.0.0.1", "Address the workers listen on (loopback by default).")
FLAGS = flags.FLAGS


def free_ports(n: int, host: str) -> list[int]:
    """Returns n ports that were free on host a moment ago."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind((host, 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(addresses: list[str], index: int) -> str:
    """The TF_CONFIG JSON for worker `index` of a cluster of `addresses`."""
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _forward(stream, prefix: str) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{prefix} {line.decode(errors='replace')}")
        sys.stdout.flush()


def launch(command: list[str], workers: int, host: str = "127.0.0.1") -> int:
    """Runs `command` in `workers` processes with TF_CONFIG set; returns the first non-zero exit code."""
    if not any(arg.startswith("--strategy") for arg in command):
        command = [*command, "--strategy=multi_worker_mirrored"]
    addresses = [f"{host}:{port}" for port in free_ports(workers, host)]
    processes, readers = [], []
    for i in range(workers):
        env = dict(os.environ, TF_CONFIG=tf_config(addresses, i), PYTHONUNBUFFERED="1")
        p = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        readers.append(threading.Thread(target=_forward, args=(p.stdout, f"[worker {i}]"), daemon=True))
        readers[-1].start()
        processes.append(p)
    # A SIGTERM to the launcher must stop the workers too, or they wait in collectives forever.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    exit_code = 0
    try:
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.returncode not in (None, 0)]
            if failed:
                exit_code = failed[0].returncode
                print(f"[launch] a worker exited with {exit_code}; stopping the others", flush=True)
                break
            time.sleep(0.2)
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait()
        for reader in readers:
            reader.join(timeout=5)  # flush the last lines
    return exit_code or next((p.returncode for p in processes if p.returncode), 0)


def main(argv: list[str]) -> None:
    """Runs the command after `--` in --workers processes."""
    command = argv[1:]
    if not command:
        raise app.UsageError("usage: python -m core.launch --workers=N -- <command> [args...]")
    sys.exit(launch(command, FLAGS.workers, FLAGS.host))


if __name__ == "__main__":
    app.run(main)
