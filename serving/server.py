"""An embedded model server with TF Serving's REST API, for laptops and CI (no Docker needed).

    python -m serving.server --model_name=cnn_vision --model_base_path=runs/cnn_vision/default/export
    python -m serving.server --model_config_file=serving/models.config --rest_api_port=8501

Serves the same exports, URLs and JSON as `tensorflow_model_server --rest_api_port=8501`:

    POST /v1/models/NAME[/versions/N|/labels/L]:predict   {"instances": ...} or {"inputs": ...}
    GET  /v1/models/NAME[/versions/N|/labels/L]           version status
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata  signatures

on uvicorn (uvloop, httptools), with the model calls in a thread pool. Flags keep TF Serving's names
where it has them. The port is bound before the models load, so a port in use fails at once. New
version folders that appear under a base path are loaded and removed ones unloaded, every
--file_system_poll_wait_seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import re
import signal
import socket
import sys
from http import HTTPStatus

import uvicorn
from absl import app as absl_app
from absl import flags, logging

from . import batching, models, rest
from . import config as serving_config

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the binary's flags; only when it runs as one, so importing the app (tests) cannot clash
    with other binaries' flags (--host, --port, ...) in one process."""
    flags.DEFINE_string("model_config_file", None, "A ModelServerConfig text proto (TF Serving's format).")
    flags.DEFINE_string("model_name", "default", "Name of the one model when --model_base_path is given.")
    flags.DEFINE_string("model_base_path", None, "Folder holding the model's integer version folders.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; 0.0.0.0 to accept other machines.")
    flags.DEFINE_integer("rest_api_port", 8501, "Port of the REST API; 0 picks a free one (printed at start).")
    flags.DEFINE_integer("rest_api_num_threads", None, "Threads that run model calls (batched calls run in the "
                         "batcher's threads). Default: 4 per CPU core; a call releases Python's GIL while TensorFlow "
                         "runs it, so several run at once (2 threads on 2 cores: 1,300 b64 PNG requests/s at 8 "
                         "clients; 8 threads: 1,800).")
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "How often to look for new or removed versions; 0: never.")
    flags.DEFINE_bool("enable_batching", False, "Merge concurrent predict calls into one batch (TF Serving's flag).")
    flags.DEFINE_string("batching_parameters_file", None, "BatchingParameters text proto for --enable_batching.")
    flags.DEFINE_integer("max_request_bytes", 32 << 20, "Larger request bodies are refused with HTTP 413.")


# TF Serving's URL grammar: model, optional version or label, optional :verb or /metadata.
_URL = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                  r"(?::(?P<verb>predict|classify|regress)|(?P<metadata>/metadata))?$")


_PARSE_ON_LOOP_BYTES = 64 << 10  # bodies up to this size (an image is a few KB) are parsed on the event loop


class RestApi:
    """TF Serving's REST API over a model registry, apart from any HTTP server: `respond` maps one request
    (method, path, body) to a status and a JSON body. The WSGI and ASGI adapters below only move bytes."""

    def __init__(self, registry: models.ModelRegistry, max_request_bytes: int = 32 << 20,
                 batcher: batching.Batcher | None = None):
        self.registry, self.max_request_bytes, self.batcher = registry, max_request_bytes, batcher

    def too_large(self, declared_length: int | None) -> tuple[int, bytes] | None:
        """The 413 for a declared body size over the limit, answered before the body is read."""
        if declared_length is not None and declared_length > self.max_request_bytes:
            return _error(f"Request body of {declared_length} bytes exceeds the limit of {self.max_request_bytes} "
                          "bytes (--max_request_bytes).", 413)
        return None

    def respond(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """The status and JSON body for one request; `body` holds at most max_request_bytes + 1 bytes."""
        try:
            step = self._route(method, path, body)
            if isinstance(step, tuple):
                return step
            outputs = self.batcher.run(step.servable, step.signature, step.inputs) if step.batched else step.run()
            return _json(step.answer(outputs))
        except Exception as e:  # noqa: BLE001 - every failure is a JSON error, and the server goes on
            return _failure(e, method, path)

    async def respond_async(self, method: str, path: str, body: bytes, pool) -> tuple[int, bytes]:
        """`respond` for the event loop: parsing and encoding run here, the model in `pool` or in the batcher,
        whose batch threads answer the loop directly (no thread of the pool waits for them). A large body is
        parsed in the pool, so it does not stall every other connection meanwhile."""
        try:
            if len(body) > _PARSE_ON_LOOP_BYTES:
                step = await asyncio.get_running_loop().run_in_executor(pool, self._route, method, path, body)
            else:
                step = self._route(method, path, body)
            if isinstance(step, tuple):
                return step
            if step.batched:
                try:
                    future = self.batcher.submit(step.servable, step.signature, step.inputs)
                    outputs = await asyncio.wait_for(asyncio.wrap_future(future), batching.TIMEOUT)
                except TimeoutError as e:
                    raise batching.timed_out(batching.TIMEOUT) from e
            else:
                outputs = await asyncio.get_running_loop().run_in_executor(pool, step.run)
            return _json(step.answer(outputs))
        except Exception as e:  # noqa: BLE001 - every failure is a JSON error, and the server goes on
            return _failure(e, method, path)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | PredictCall:
        """The answer to anything but a predict call, or the predict call with its inputs parsed."""
        match = _URL.match(path)
        if not match or method not in ("GET", "POST"):
            if path.startswith("/v1/"):  # TF Serving answers anything else under /v1/ as malformed
                return _error(f"Malformed request: {method} {path}", 400)
            return _error(f"Not found: {path}; the API lives under /v1/models/", 404)
        name, label = match["name"], match["label"]
        version = int(match["version"]) if match["version"] else None
        model = self.registry.get(name)
        if method == "GET":
            if match["verb"]:
                return _error(f"Malformed request: GET {path}", 400)
            if match["metadata"]:
                return _json(_metadata(model, version, label))
            return _json(model.status(version, label))
        if match["verb"] != "predict":
            if not match["verb"]:
                return _error(f"Malformed request: POST {path}", 400)
            return _error(f"{match['verb']} is not implemented by this server: it serves :predict (classify "
                          "and regress take tf.Example signatures, which the projects do not export)", 501)
        if len(body) > self.max_request_bytes:
            raise rest.ApiError(f"Request body exceeds the limit of {self.max_request_bytes} bytes "
                                "(--max_request_bytes).", 413)
        return PredictCall(model.resolve(version, label), body, self.batcher is not None)


class PredictCall:
    """One predict request, parsed and checked against its signature: what to run, and how to answer (the
    benchmark takes requests apart with it too)."""

    def __init__(self, servable: models.SavedModelVersion, body: bytes, batching_on: bool):
        request = rest.parse_json(body)
        self.servable, self.signature = servable, _signature(servable, request)
        self.inputs, self.row_format = rest.request_inputs(request, servable.input_specs(self.signature))
        self.batch_size = next(iter(self.inputs.values())).shape[0] if self.row_format else None
        self.batched = batching_on and self.row_format  # columnar calls may not share a batch dimension

    def run(self) -> dict:
        """Runs the signature alone."""
        try:
            return self.servable.run(self.signature, self.inputs)
        except Exception as e:  # noqa: BLE001 - mapped to the status TF Serving would answer
            raise rest.run_error(e) from e

    def answer(self, outputs: dict) -> dict:
        """The response in the request's format."""
        return rest.response(outputs, self.row_format, self.batch_size)


def _failure(error: Exception, method: str, path: str) -> tuple[int, bytes]:
    """The JSON error for an exception: the API's own statuses, else a logged 500."""
    if isinstance(error, models.NotFound):
        return _error(str(error), 404)
    if isinstance(error, models.UnknownLabel):
        return _error(str(error), 400)
    if isinstance(error, rest.ApiError):
        return _error(str(error), error.status)
    logging.exception("Request failed: %s %s", method, path, exc_info=error)
    return _error(f"Internal error: {type(error).__name__}: {error}", 500)


def _json(payload: dict, status: int = 200) -> tuple[int, bytes]:
    return status, rest.dumps(payload)


def _error(message: str, status: int) -> tuple[int, bytes]:
    return _json({"error": message}, status)


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]


class WsgiApp:
    """The API as a WSGI application (any WSGI server; the tests drive it with werkzeug's client)."""

    def __init__(self, api: RestApi):
        self.api = api

    def __call__(self, environ: dict, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        length = int(environ["CONTENT_LENGTH"]) if environ.get("CONTENT_LENGTH", "").isdigit() else None
        answer = self.api.too_large(length) if method == "POST" else None
        if answer is None:
            body = environ["wsgi.input"].read(self.api.max_request_bytes + 1) if method == "POST" else b""
            answer = self.api.respond(method, path, body)
        status, payload = answer
        start_response(f"{status} {HTTPStatus(status).phrase}", _headers(payload))
        return [payload]

    def test_client(self):
        """werkzeug's test client (requests without a server), as Flask's test_client gives."""
        from werkzeug.test import Client, TestResponse

        return Client(self, TestResponse)


class AsgiApp:
    """The API as an ASGI application, which the binary serves with uvicorn: the event loop (uvloop, with
    httptools parsing HTTP in C) reads requests, parses them and writes answers; model calls run in a thread
    pool, where they release the GIL, or in the batcher's threads."""

    def __init__(self, api: RestApi, threads: int):
        self.api = api
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rest")

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":  # lifespan and websockets: nothing to do
            return
        method, path = scope["method"], scope["path"]
        length = next((int(v) for k, v in scope["headers"] if k == b"content-length" and v.isdigit()), None)
        answer = self.api.too_large(length) if method == "POST" else None
        if answer is None:
            body = await _read_body(receive, self.api.max_request_bytes + 1) if method == "POST" else b""
            if body is None:  # the client went away before sending all of it: nobody to answer
                return
            answer = await self.api.respond_async(method, path, body, self.pool)
        status, payload = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in _headers(payload)]})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive, limit: int) -> bytes | None:
    """The request body, stopping once it holds more than `limit` bytes (the caller answers 413); None if the
    client disconnected first."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size >= limit or not message.get("more_body"):
            break
    return b"".join(chunks)


def create_app(registry: models.ModelRegistry, max_request_bytes: int = 32 << 20,
               batcher: batching.Batcher | None = None) -> WsgiApp:
    """The WSGI application; `registry` must already be started."""
    return WsgiApp(RestApi(registry, max_request_bytes, batcher))


def _signature(servable: models.SavedModelVersion, request: dict) -> str:
    name = request.get("signature_name")
    name = "serving_default" if name is None or name == "" else name
    if not isinstance(name, str):
        raise rest.BadRequest("'signature_name' key must be a string value.")
    if name not in servable.signatures:
        raise rest.BadRequest(f'Serving signature name: "{name}" not found in signature def '
                              f"(this model has {', '.join(sorted(servable.signatures))})")
    return name


def _metadata(model: models.Model, version: int | None, label: str | None) -> dict:
    servable = model.resolve(version, label)
    return {"model_spec": {"name": model.name, "signature_name": "", "version": str(servable.number)},
            "metadata": {"signature_def": servable.signature_def_map()}}


def model_configs() -> list[serving_config.ModelConfig]:
    """The models to serve, from --model_config_file or --model_name/--model_base_path."""
    if bool(FLAGS.model_config_file) == bool(FLAGS.model_base_path):
        raise serving_config.ConfigFileError("give either --model_config_file or --model_base_path (with "
                                             "--model_name), not both and not neither.")
    if FLAGS.batching_parameters_file and not FLAGS.enable_batching:
        raise serving_config.ConfigFileError("--batching_parameters_file is set without --enable_batching.")
    if FLAGS.model_config_file:
        configs = serving_config.read_model_configs(FLAGS.model_config_file)
    else:
        configs = [serving_config.single_model_config(FLAGS.model_name, FLAGS.model_base_path)]
    for config in configs:
        if not os.path.isdir(config.base_path):
            where = FLAGS.model_config_file or "--model_base_path"
            raise serving_config.ConfigFileError(f"{where}: base path {config.base_path} of model {config.name!r} is "
                                                 "not a folder (export first; see serving/README.md).")
    return configs


def main(argv: list[str]) -> None:
    """Binds the port, loads the models, starts the version poller and serves until interrupted."""
    del argv
    try:
        configs = model_configs()
        params = serving_config.read_batching_parameters(FLAGS.batching_parameters_file) \
            if FLAGS.batching_parameters_file else None
    except serving_config.ConfigFileError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    registry = models.ModelRegistry(configs, FLAGS.file_system_poll_wait_seconds)
    batcher = batching.Batcher(params) if FLAGS.enable_batching else None
    threads = FLAGS.rest_api_num_threads or 4 * (os.cpu_count() or 2)
    try:
        # Bound and listening before any model loads, so a port in use fails at once instead of after minutes of
        # loading; connections made meanwhile wait in the listen backlog.
        family = socket.AF_INET6 if ":" in FLAGS.host else socket.AF_INET
        sock = socket.create_server((FLAGS.host, FLAGS.rest_api_port), family=family, backlog=2048)
    except OSError as e:
        reason = (e.strerror or str(e)).split(" (while attempting")[0]
        print(f"error: cannot listen on {FLAGS.host}:{FLAGS.rest_api_port} (--host, --rest_api_port): {reason}",
              file=sys.stderr)
        sys.exit(2)
    app = AsgiApp(RestApi(registry, FLAGS.max_request_bytes, batcher), threads)
    server = uvicorn.Server(uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", access_log=False,
                                           log_level="warning", timeout_graceful_shutdown=10))
    # uvicorn answers what is in flight on SIGTERM, then raises the signal again to its previous handler: this
    # one, so the models and threads below are released and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        registry.start()
        # The objects alive now (TensorFlow, the models) leave the garbage collector's generations: a full collection
        # over them takes about 100 ms, which JSON parsing's allocations would trigger every few hundred requests.
        gc.freeze()
        for model in registry.models.values():
            if not model.available():
                logging.warning("No version of %s is loadable yet under %s; waiting for one to appear.",
                                model.name, model.base_path)
        print(f"Exporting HTTP/REST API at: http://{FLAGS.host}:{sock.getsockname()[1]} "
              f"(models: {', '.join(registry.models)})", flush=True)
        server.run(sockets=[sock])  # until SIGINT or SIGTERM, then answers what is in flight
    except KeyboardInterrupt:
        pass
    finally:
        registry.stop()
        if batcher is not None:
            batcher.stop()
        app.pool.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    define_flags()
    absl_app.run(main)
