"""One training run per model dir: an OS-level lock that dies with the process holding it.

Two runs writing into one model dir would save the same `ckpt-N` names, so the kept checkpoints would
be an unknown mix of both and the CSV log would interleave them. `fcntl.flock` is released by the
kernel when its process ends in any way, kill -9 included, so a crashed run never leaves a stale
lock behind: the lock file may stay, but nobody holds it and the next run takes it at once.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator

from core.config import UserError

LOCK_FILE = "training.lock"


class ModelDirBusy(UserError):
    """Another live run holds the model dir; the message names it (pid, host, start time)."""


def _holder(handle) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        info = {}
    if not info:
        return "another process (it is just starting)"
    return f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"


@contextlib.contextmanager
def hold_model_dir(model_dir: str) -> Iterator[str]:
    """Holds `<model_dir>/training.lock` for the block; raises ModelDirBusy if another run holds it."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, LOCK_FILE)
    # "a+" neither truncates the holder's record nor fails when the file exists.
    handle = open(path, "a+")  # noqa: SIM115 (closed below; closing releases the lock)
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelDirBusy(
                f"--model_dir={model_dir} is in use by another training run ({_holder(handle)}): "
                "wait for it to end, stop it, or train into another --model_dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        handle.flush()
        yield path
    finally:
        handle.close()
