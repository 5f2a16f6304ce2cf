"""Starting the servers as child processes on free ports, for the demo, the benchmark and the tests."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Child:
    """A running `python -m <module>`: its base URL (read from the line it prints when ready) and its log."""

    def __init__(self, module: str, args: list[str], ready: str, timeout: float = 120.0):
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                   PYTHONUNBUFFERED="1")
        self.module = module
        self.process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for(re.compile(re.escape(ready) + r"\s*(http://\S+)"), timeout)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def _wait_for(self, pattern: re.Pattern, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            match = pattern.search(line)
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError(f"{self.module} did not start; its output:\n" + "\n".join(self.lines[-30:]))

    def log(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Terminates the process (kills it after 10 s) and closes its pipe."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)  # reads to the end of the pipe once the process is gone
        if self.process.stdout and not self._reader.is_alive():
            self.process.stdout.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(*args: str) -> Child:
    """The embedded model server on a free port (pass --model_config_file or --model_base_path)."""
    return Child("serving.server", ["--rest_api_port=0", *args], "Exporting HTTP/REST API at:")


def start_middleware(upstream: str, *args: str) -> Child:
    """The Flask middleware on a free port in front of `upstream`."""
    return Child("serving.middleware", [f"--upstream={upstream}", "--port=0", *args], "Middleware at:")
