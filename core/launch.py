"""Starts a cluster of processes on this machine, each with its own TF_CONFIG, for multi-worker training.

    python -m core.launch --workers=2 -- python -m projects.cnn_vision.train \
        --gin_file=projects/cnn_vision/configs/smoke.gin --model_dir=/tmp/mw

Each task gets a free port on 127.0.0.1 and runs the same command; output lines are prefixed with the
task's name. Two kinds of cluster:

  --workers=N          N workers with `--strategy=multi_worker_mirrored` (unless the command names a
                       strategy). If one fails, the others are stopped and the launcher exits with its
                       exit code: synchronous training cannot go on without it.
  --ps=P --workers=N   a chief (the coordinator, which trains and writes the model dir), N workers and P
                       parameter servers, with `--strategy=parameter_server`. The workers and servers only
                       serve the chief; when the chief exits they are stopped and the launcher exits with
                       the chief's code. A worker or server that dies while the chief runs is started
                       again, as a cluster manager would; after --max_restarts restarts of one task the
                       cluster is stopped and the launcher exits with that task's code. The chief carries
                       on without a worker meanwhile, but stops with an error when a parameter server
                       (which held variables) is lost, and resumes from its last checkpoint when run again.
                       A Ctrl-C lets the chief save a checkpoint before the others are stopped.

On a real cluster, set TF_CONFIG on each machine yourself and run the same command there; nothing else
changes (README: Scale-out).
"""

from __future__ import annotations

import dataclasses
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
flags.DEFINE_integer("ps", 0, "Number of parameter-server processes; > 0 also starts a chief and trains with "
                              "--strategy=parameter_server.")
flags.DEFINE_string("host", "127.0.0.1", "Address the tasks listen on (loopback by default).")
flags.DEFINE_integer("max_restarts", 5, "With --ps: how many times a worker or parameter server that dies while "
                                        "the chief runs is started again, as a cluster manager would; then the "
                                        "cluster is stopped. 0: stop at the first death.")
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


def tf_config(cluster: dict[str, list[str]], kind: str, index: int) -> str:
    """The TF_CONFIG JSON for task `kind` `index` ("worker", 1) of `cluster` ({"worker": [addresses], ...})."""
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


def cluster_spec(host: str, workers: int, ps: int) -> dict[str, list[str]]:
    """The `cluster` part of TF_CONFIG: `worker` addresses, and with ps > 0 also `chief` and `ps`."""
    names = (["chief"] if ps else []) + ["worker"] * workers + ["ps"] * ps
    ports = iter(free_ports(len(names), host))
    cluster = {}
    for name in names:
        cluster.setdefault(name, []).append(f"{host}:{next(ports)}")
    return cluster


@dataclasses.dataclass
class _Task:
    kind: str  # chief, worker or ps
    index: int
    env: dict
    process: subprocess.Popen | None = None
    restarts: int = 0

    @property
    def name(self) -> str:
        return "chief" if self.kind == "chief" else f"{self.kind} {self.index}"


def _forward(stream, prefix: str) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{prefix} {line.decode(errors='replace')}")
        sys.stdout.flush()


def _say(message: str) -> None:
    print(f"[launch] {message}", flush=True)


def launch(command: list[str], workers: int, host: str = "127.0.0.1", ps: int = 0, max_restarts: int = 5) -> int:
    """Runs `command` in every task of the cluster with TF_CONFIG set; returns the exit code (see the module doc)."""
    strategy = "parameter_server" if ps else "multi_worker_mirrored"
    named = [arg for arg in command if arg.startswith("--strategy")]
    if not named:
        command = [*command, f"--strategy={strategy}"]
    elif ps and named[-1] != "--strategy=parameter_server":
        # The workers and servers would train on their own instead of serving the chief.
        raise ValueError(f"--ps={ps} runs a parameter-server cluster, but the command says {named[-1]}: drop it, "
                         "or pass --strategy=parameter_server.")
    cluster = cluster_spec(host, workers, ps)
    tasks = [
        _Task(kind, index, dict(os.environ, PYTHONUNBUFFERED="1", TF_CONFIG=tf_config(cluster, kind, index)))
        for kind in ("chief", "worker", "ps") for index in range(len(cluster.get(kind, [])))
    ]
    readers = []

    def start(task: _Task) -> None:
        task.process = subprocess.Popen(command, env=task.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        readers.append(threading.Thread(target=_forward, args=(task.process.stdout, f"[{task.name}]"), daemon=True))
        readers[-1].start()
        _say(f"started {task.name} at {cluster[task.kind][task.index]}, pid {task.process.pid}")

    for task in tasks:
        start(task)
    # A SIGTERM to the launcher must stop the tasks too, or they wait for each other forever. Ctrl-C is
    # handled (below) even when the launcher was started with it ignored (in the background of a script), as
    # the chief's trainer handles it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    chief = tasks[0] if ps else None

    def check() -> int | None:
        """The launcher's exit code once the cluster is done, else None (restarting what died under --ps)."""
        if chief is None:  # multi-worker mirrored: all finish, or one failure ends the run
            failed = [t for t in tasks if t.process.poll() not in (None, 0)]
            if failed:
                _say(f"{failed[0].name} exited with {failed[0].process.returncode}; stopping the others")
                return failed[0].process.returncode
            return 0 if all(t.process.poll() is not None for t in tasks) else None
        if chief.process.poll() is not None:
            return chief.process.returncode
        for task in tasks[1:]:
            code = task.process.poll()
            if code is None:
                continue
            if task.restarts >= max_restarts:
                _say(f"{task.name} exited with {code} after {task.restarts} restart(s) (--max_restarts); "
                     "stopping the others")
                return code or 1
            task.restarts += 1
            _say(f"{task.name} exited with {code}; starting it again (restart {task.restarts})")
            start(task)
        return None

    try:
        try:
            while (exit_code := check()) is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            if chief is None:
                raise
            # The terminal's Ctrl-C reached the chief too (the servers ignore it): it stops at the next step
            # boundary and saves a checkpoint, for which the servers must still be up.
            _say("Ctrl-C: waiting for the chief to save a checkpoint and stop (Ctrl-C again to stop everything)")
            try:
                exit_code = chief.process.wait()
            except KeyboardInterrupt:
                exit_code = 130
    finally:
        for task in tasks:
            if task.process.poll() is None:
                task.process.send_signal(signal.SIGTERM)
        for task in tasks:
            try:
                task.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                task.process.kill()
                task.process.wait()
        for reader in readers:
            reader.join(timeout=5)  # flush the last lines
    return exit_code


def main(argv: list[str]) -> None:
    """Runs the command after `--` in every task of the cluster."""
    command = argv[1:]
    if not command:
        raise app.UsageError("usage: python -m core.launch [--ps=P] --workers=N -- <command> [args...]")
    if FLAGS.workers < 1 or FLAGS.ps < 0:
        raise app.UsageError(f"--workers={FLAGS.workers} --ps={FLAGS.ps}: expected at least 1 worker and 0 or more ps.")
    try:
        code = launch(command, FLAGS.workers, FLAGS.host, FLAGS.ps, FLAGS.max_restarts)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    sys.exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    app.run(main)
