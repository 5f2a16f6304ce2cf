"""Writing files so that readers never see half of one."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside `path` and moves it onto `path` only if the block succeeds.

    The temporary name keeps `path`'s suffix (Keras checks `.keras` and `.weights.h5`).
    A rename within one folder is atomic, so `path` is always either the old or the new file.
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
