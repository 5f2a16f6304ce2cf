"""Server-side batching, as TF Serving's --enable_batching: concurrent predict calls share one model call.

Requests for the same version and signature that arrive within `batch_timeout_micros` of each other are
concatenated along the batch dimension (up to `max_batch_size` rows), run once, and split back. It trades
a little latency for throughput when many clients call at once. Parameters come from the same
BatchingParameters file TF Serving reads (serving/docker/batching.config); `allowed_batch_sizes` is
checked there but not used to pad batches, which only pays off on accelerators that compile per shape.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from absl import logging

from . import rest

TIMEOUT = 60.0  # seconds a request waits for its batch


def timed_out(timeout: float) -> rest.ApiError:
    """The 504 of a request whose batch did not run in time."""
    return rest.ApiError(f"No batch ran this request within {timeout:g} s.", 504)


class QueueFull(rest.ApiError):
    """More rows are waiting than max_enqueued_batches allows: HTTP 503, try again."""

    def __init__(self, message: str):
        super().__init__(message, 503)


@dataclass
class _Task:
    servable: object
    signature: str
    inputs: dict[str, np.ndarray]
    rows: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class Batcher:
    """Worker threads that merge queued predict calls with the same version and signature."""

    def __init__(self, params=None):
        def value(name: str, default: int) -> int:
            return getattr(params, name).value if params is not None and params.HasField(name) else default

        self.max_batch_size = value("max_batch_size", 32)
        self.timeout = value("batch_timeout_micros", 2000) / 1e6
        self.max_rows = value("max_enqueued_batches", 16) * self.max_batch_size
        self._pending: list[_Task] = []
        self._cv = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"batcher-{i}", daemon=True)
                         for i in range(value("num_batch_threads", 2))]
        for thread in self._threads:
            thread.start()

    def submit(self, servable, signature: str, inputs: dict[str, np.ndarray]) -> concurrent.futures.Future:
        """Queues one call; the future gets its share of a batch's outputs, or the error of its own call."""
        task = _Task(servable, signature, inputs, rows=next(iter(inputs.values())).shape[0])
        with self._cv:
            if self._stopped:
                raise QueueFull("The batcher is shutting down.")
            if sum(t.rows for t in self._pending) + task.rows > self.max_rows:
                raise QueueFull("The batch scheduling queue is full; retry later (max_enqueued_batches).")
            self._pending.append(task)
            self._cv.notify()
        return task.future

    def run(self, servable, signature: str, inputs: dict[str, np.ndarray],
            timeout: float = TIMEOUT) -> dict[str, np.ndarray]:
        """Queues one call and waits for its share of a batch's outputs."""
        try:
            return self.submit(servable, signature, inputs).result(timeout)
        except concurrent.futures.TimeoutError as e:
            raise timed_out(timeout) from e

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopped:
                    self._cv.wait()
                if self._stopped:
                    return
                deadline = time.monotonic() + self.timeout
                # Wait for the oldest request's batch to fill; another worker may take it meanwhile.
                while self._pending and self._rows_like(self._pending[0]) < self.max_batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
                if not self._pending:
                    continue
                first, batch, rows = self._pending[0], [], 0
                for task in list(self._pending):
                    same = task.servable is first.servable and task.signature == first.signature
                    if same and (not batch or rows + task.rows <= self.max_batch_size):
                        self._pending.remove(task)
                        # False for a request given up meanwhile (its caller timed out): it is not run.
                        if task.future.set_running_or_notify_cancel():
                            batch.append(task)
                            rows += task.rows
            if batch:
                self._run(batch)

    def _rows_like(self, first: _Task) -> int:
        return sum(t.rows for t in self._pending if t.servable is first.servable and t.signature == first.signature)

    @staticmethod
    def _run(batch: list[_Task]) -> None:
        """Runs the batch as one call; if that fails, each request alone, so one bad input fails only itself."""
        first = batch[0]
        try:
            if len(batch) > 1:
                try:
                    merged = {name: np.concatenate([t.inputs[name] for t in batch]) for name in first.inputs}
                    outputs = first.servable.run(first.signature, merged)
                    total = sum(t.rows for t in batch)
                    if all(v.ndim and v.shape[0] == total for v in outputs.values()):
                        ends = np.cumsum([t.rows for t in batch])
                        shares = [{k: v[end - t.rows:end] for k, v in outputs.items()} for t, end in zip(batch, ends)]
                        for task, share in zip(batch, shares, strict=True):
                            task.future.set_result(share)
                        return
                except Exception:  # noqa: BLE001 - fall through to one call per request
                    pass
            for task in batch:
                try:
                    task.future.set_result(_call(task))
                except Exception as e:  # noqa: BLE001 - the error goes back to that request
                    task.future.set_exception(e)
        except BaseException as e:  # noqa: BLE001 - never leave a request waiting, never end the worker
            logging.exception("A batch failed outside its model call.")
            for task in batch:
                if not task.future.done():
                    task.future.set_exception(rest.ApiError(f"Internal error: {type(e).__name__}: {e}", 500))

    def stop(self) -> None:
        """Ends the worker threads; queued requests fail with QueueFull (503)."""
        with self._cv:
            self._stopped = True
            for task in self._pending:
                if task.future.set_running_or_notify_cancel():
                    task.future.set_exception(QueueFull("The batcher is shutting down."))
            self._pending.clear()
            self._cv.notify_all()


def _call(task: _Task) -> dict[str, np.ndarray]:
    try:
        return task.servable.run(task.signature, task.inputs)
    except Exception as e:  # noqa: BLE001 - mapped to the status TF Serving would answer
        raise rest.run_error(e) from e
