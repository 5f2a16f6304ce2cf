"""Writing files so that readers never see half of one, and cleaning up after writers that were killed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket

from absl import logging

# Every temporary this project writes is named `.tmp-<pid>-<host>-<name>` beside its final path, so the
# leftovers of a killed writer can be told from those of one still running: on this host, by its pid.
# A model dir on a shared filesystem may hold other hosts' temporaries, whose pids mean nothing here.
_TEMPORARY = re.compile(r"^\.tmp-(\d+)-(.*)$")


def temporary_path(path: str) -> str:
    """The temporary name beside `path` that this process writes before renaming onto `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".tmp-{os.getpid()}-{socket.gethostname()}-{name}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside `path` and moves it onto `path` only if the block succeeds.

    The temporary name keeps `path`'s suffix (Keras checks `.keras` and `.weights.h5`).
    A rename within one folder is atomic, so `path` is always either the old or the new file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename != tmp:
            raise
        # Name the file the user asked for (a read-only folder, a full disk), not its temporary name.
        raise type(e)(e.errno, e.strerror, path) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def process_alive(pid: int) -> bool:
    """True if a process with this id runs on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Removes the temporaries in `directory` of this host's writers that are gone; returns them.

    A writer killed with SIGKILL cannot clean up, so without this its temporaries (half an export, half
    a `.keras` file) would stay forever. Those of live processes, and of other hosts, are left alone.
    """
    removed = []
    if not os.path.isdir(directory):
        return removed
    host = socket.gethostname()
    for name in sorted(os.listdir(directory)):
        match = _TEMPORARY.match(name)
        if not match or not match.group(2).startswith(f"{host}-") or process_alive(int(match.group(1))):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(path)
    if removed:
        logging.info("Removed %d temporary file(s) left by killed writers in %s", len(removed), directory)
    return removed
