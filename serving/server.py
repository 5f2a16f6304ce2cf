"""An embedded model server with TF Serving's REST API, for laptops and CI (no Docker needed).

    python -m serving.server --model_name=cnn_vision --model_base_path=runs/cnn_vision/default/export
    python -m serving.server --model_config_file=serving/models.config --rest_api_port=8501

Serves the same exports, URLs and JSON as `tensorflow_model_server --rest_api_port=8501`:

    POST /v1/models/NAME[/versions/N|/labels/L]:predict   {"instances": ...} or {"inputs": ...}
    GET  /v1/models/NAME[/versions/N|/labels/L]           version status
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata  signatures

on waitress, a production WSGI server. Flags keep TF Serving's names where it has them. The port is
bound before the models load, so a port in use fails at once. New version folders that appear under a
base path are loaded and removed ones unloaded, every --file_system_poll_wait_seconds.
"""

from __future__ import annotations

import os
import re
import sys

import flask
import waitress
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
    flags.DEFINE_integer("rest_api_num_threads", None, "Worker threads of the WSGI server. Default: one per CPU core "
                         "(more threads only contend for Python's GIL and stretch tail latency), or 4 per core with "
                         "--enable_batching, where threads mostly wait for their batch.")
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "How often to look for new or removed versions; 0: never.")
    flags.DEFINE_bool("enable_batching", False, "Merge concurrent predict calls into one batch (TF Serving's flag).")
    flags.DEFINE_string("batching_parameters_file", None, "BatchingParameters text proto for --enable_batching.")
    flags.DEFINE_integer("max_request_bytes", 32 << 20, "Larger request bodies are refused with HTTP 413.")


# TF Serving's URL grammar: model, optional version or label, optional :verb or /metadata.
_URL = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                  r"(?::(?P<verb>predict|classify|regress)|(?P<metadata>/metadata))?$")


def _json(payload: dict, status: int = 200) -> flask.Response:
    return flask.Response(rest.dumps(payload), status=status, mimetype="application/json")


def _error(message: str, status: int) -> flask.Response:
    return _json({"error": message}, status)


def create_app(registry: models.ModelRegistry, max_request_bytes: int = 32 << 20,
               batcher: batching.Batcher | None = None) -> flask.Flask:
    """The WSGI application; `registry` must already be started."""
    app = flask.Flask(__name__)

    @app.route("/v1/models/<path:_rest>", methods=["GET", "POST"])
    def models_api(_rest):
        # Flask has already split the path; parse the raw one so ':' verbs and labels match TF Serving.
        match = _URL.match(flask.request.path)
        if not match:
            return _error(f"Malformed request: {flask.request.method} {flask.request.path}", 400)
        name, label = match["name"], match["label"]
        version = int(match["version"]) if match["version"] else None
        try:
            model = registry.get(name)
            if flask.request.method == "GET":
                if match["verb"]:
                    return _error(f"Malformed request: GET {flask.request.path}", 400)
                if match["metadata"]:
                    return _json(_metadata(model, version, label))
                return _json(model.status(version, label))
            if match["verb"] != "predict":
                if not match["verb"]:
                    return _error(f"Malformed request: POST {flask.request.path}", 400)
                return _error(f"{match['verb']} is not implemented by this server: it serves :predict (classify "
                              "and regress take tf.Example signatures, which the projects do not export)", 501)
            return _json(_predict(model.resolve(version, label), _body(max_request_bytes), batcher))
        except models.NotFound as e:
            return _error(str(e), 404)
        except models.UnknownLabel as e:
            return _error(str(e), 400)
        except rest.ApiError as e:
            return _error(str(e), e.status)

    @app.route("/v1/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def other_v1(_rest):
        return _error(f"Malformed request: {flask.request.method} {flask.request.path}", 400)

    @app.errorhandler(404)
    def not_found(_):
        return _error(f"Not found: {flask.request.path}; the API lives under /v1/models/", 404)

    @app.errorhandler(405)
    def bad_method(_):  # TF Serving answers other methods on /v1/ paths as malformed requests
        return _error(f"Malformed request: {flask.request.method} {flask.request.path}", 400)

    @app.errorhandler(Exception)
    def internal(e):
        logging.exception("Request failed: %s %s", flask.request.method, flask.request.path)
        return _error(f"Internal error: {type(e).__name__}: {e}", 500)

    return app


def _body(limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them where the size is declared."""
    length = flask.request.content_length
    if length is not None and length > limit:
        raise rest.ApiError(f"Request body of {length} bytes exceeds the limit of {limit} bytes (--max_request_bytes).",
                            413)
    body = flask.request.stream.read(limit + 1)
    if len(body) > limit:
        raise rest.ApiError(f"Request body exceeds the limit of {limit} bytes (--max_request_bytes).", 413)
    return body


def _signature(servable: models.SavedModelVersion, request: dict) -> str:
    name = request.get("signature_name")
    name = "serving_default" if name is None or name == "" else name
    if not isinstance(name, str):
        raise rest.BadRequest("'signature_name' key must be a string value.")
    if name not in servable.signatures:
        raise rest.BadRequest(f'Serving signature name: "{name}" not found in signature def '
                              f"(this model has {', '.join(sorted(servable.signatures))})")
    return name


def _predict(servable: models.SavedModelVersion, body: bytes, batcher: batching.Batcher | None) -> dict:
    request = rest.parse_json(body)
    signature = _signature(servable, request)
    inputs, row_format = rest.request_inputs(request, servable.input_specs(signature))
    batch_size = next(iter(inputs.values())).shape[0] if row_format else None
    if batcher is not None and row_format:
        outputs = batcher.run(servable, signature, inputs)
    else:
        try:
            outputs = servable.run(signature, inputs)
        except Exception as e:  # noqa: BLE001 - mapped to the status TF Serving would answer
            raise rest.run_error(e) from e
    return rest.response(outputs, row_format, batch_size)


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
    threads = FLAGS.rest_api_num_threads or (os.cpu_count() or 2) * (4 if batcher else 1)
    try:
        # Bound before any model loads, so a port in use fails at once instead of after minutes of loading;
        # connections made meanwhile wait in the listen backlog. waitress's own body limit sits well above
        # ours, so oversized bodies get the JSON 413 from the app.
        server = waitress.create_server(create_app(registry, FLAGS.max_request_bytes, batcher), host=FLAGS.host,
                                        port=FLAGS.rest_api_port, threads=threads,
                                        max_request_body_size=8 * FLAGS.max_request_bytes, ident="serving.server")
    except OSError as e:
        print(f"error: cannot listen on {FLAGS.host}:{FLAGS.rest_api_port} (--host, --rest_api_port): {e.strerror}",
              file=sys.stderr)
        sys.exit(2)
    try:
        registry.start()
        for model in registry.models.values():
            if not model.available():
                logging.warning("No version of %s is loadable yet under %s; waiting for one to appear.",
                                model.name, model.base_path)
        print(f"Exporting HTTP/REST API at: http://{FLAGS.host}:{server.effective_port} "
              f"(models: {', '.join(registry.models)})", flush=True)
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        registry.stop()
        if batcher is not None:
            batcher.stop()


if __name__ == "__main__":
    define_flags()
    absl_app.run(main)
