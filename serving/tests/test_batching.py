"""Server-side batching: concurrent calls share model calls and each gets exactly its own rows back."""

import threading
import time

import numpy as np
import pytest
from google.protobuf import text_format

from serving import batching, config, rest


class Doubler:
    """A stand-in servable that records its batch sizes and refuses negative inputs, as a graph would."""

    def __init__(self):
        self.batch_sizes = []
        self._lock = threading.Lock()

    def run(self, signature, inputs):
        x = inputs["x"]
        with self._lock:
            self.batch_sizes.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": 2 * x}


def _blocking_doubler():
    """A Doubler whose calls wait until the returned event is set: its worker stays busy until then."""
    release = threading.Event()
    servable = Doubler()
    run = servable.run
    servable.run = lambda signature, inputs: release.wait(30) and run(signature, inputs)
    return servable, release


def _params(text):
    return text_format.Parse(text, config.BatchingParameters())


def test_concurrent_calls_are_merged_and_split_back_correctly():
    params = _params("max_batch_size { value: 8 } batch_timeout_micros { value: 20000 } num_batch_threads { value: 2 }")
    batcher = batching.Batcher(params)
    servable = Doubler()
    results, errors = {}, []

    def call(i):
        try:
            results[i] = batcher.run(servable, "serving_default", {"x": np.array([i, i + 0.5])})
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    batcher.stop()
    assert not errors
    for i in range(24):
        np.testing.assert_array_equal(results[i]["y"], [2 * i, 2 * i + 1])
    assert max(servable.batch_sizes) > 2, servable.batch_sizes  # some calls shared a batch
    assert max(servable.batch_sizes) <= 8


def test_a_bad_request_fails_alone_not_its_batch():
    batcher = batching.Batcher(_params("max_batch_size { value: 8 } batch_timeout_micros { value: 50000 }"))
    servable = Doubler()
    outcomes = {}

    def call(value):
        try:
            outcomes[value] = batcher.run(servable, "serving_default", {"x": np.array([value])})["y"].tolist()
        except rest.ApiError as e:
            outcomes[value] = (e.status, str(e))

    threads = [threading.Thread(target=call, args=(v,)) for v in (1.0, -1.0, 3.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    batcher.stop()
    assert outcomes[1.0] == [2.0] and outcomes[3.0] == [6.0]
    assert outcomes[-1.0] == (500, "Internal error: ValueError: negative input")


def test_a_full_queue_is_refused_with_503():
    batcher = batching.Batcher(_params("max_batch_size { value: 2 } max_enqueued_batches { value: 1 } "
                                       "num_batch_threads { value: 1 }"))
    servable, release = _blocking_doubler()
    busy = threading.Thread(target=batcher.run, args=(servable, "s", {"x": np.zeros(1)}))
    busy.start()
    time.sleep(0.2)  # the one worker has taken it and is blocked in the model
    queued = threading.Thread(target=batcher.run, args=(servable, "s", {"x": np.zeros(2)}))
    queued.start()
    time.sleep(0.2)  # two rows wait: the queue (1 batch of 2) is full
    with pytest.raises(batching.QueueFull) as error:
        batcher.run(servable, "s", {"x": np.zeros(1)})
    assert error.value.status == 503
    release.set()
    busy.join(timeout=30)
    queued.join(timeout=30)
    batcher.stop()


@pytest.mark.parametrize("field", ["num_batch_threads", "max_enqueued_batches", "max_batch_size"])
def test_batching_values_below_one_are_refused(tmp_path, field):
    path = tmp_path / "batching.config"
    path.write_text(f"{field} {{ value: 0 }}")
    with pytest.raises(config.ConfigFileError, match=f"{field} must be at least 1"):
        config.read_batching_parameters(str(path))


def test_a_request_given_up_is_not_run_and_the_batcher_goes_on():
    batcher = batching.Batcher(_params("max_batch_size { value: 4 } num_batch_threads { value: 1 }"))
    servable, release = _blocking_doubler()
    busy = batcher.submit(servable, "s", {"x": np.array([1.0])})
    time.sleep(0.2)  # the one worker is blocked in the model with it
    given_up = batcher.submit(servable, "s", {"x": np.array([5.0])})
    assert given_up.cancel()  # its caller timed out, as asyncio.wait_for does
    waiting = batcher.submit(servable, "s", {"x": np.array([2.0])})
    release.set()
    assert busy.result(30)["y"].tolist() == [2.0] and waiting.result(30)["y"].tolist() == [4.0]
    assert sum(servable.batch_sizes) == 2  # the given-up row never reached the model
    assert batcher.run(servable, "s", {"x": np.array([3.0])})["y"].tolist() == [6.0]  # still serving
    batcher.stop()


def test_stopping_fails_the_queued_requests_at_once():
    batcher = batching.Batcher(_params("num_batch_threads { value: 1 }"))
    servable, release = _blocking_doubler()
    busy = batcher.submit(servable, "s", {"x": np.array([1.0])})
    time.sleep(0.2)
    queued = batcher.submit(servable, "s", {"x": np.array([2.0])})
    batcher.stop()
    with pytest.raises(batching.QueueFull):
        queued.result(1)
    release.set()
    assert busy.result(30)["y"].tolist() == [2.0]
