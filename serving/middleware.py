"""A Flask middleware in front of a model server: friendly requests in, labels with scores (or values) out.

    python -m serving.middleware --upstream=http://127.0.0.1:8501 --port=8080

    curl -F image=@shoe.png http://127.0.0.1:8080/v1/classify/cnn_vision
    curl -d '{"text": "Shares fell after the profit warning"}' http://127.0.0.1:8080/v1/classify/word2vec_lstm
    -> {"model": "cnn_vision", "predictions": [{"label": "Ankle boot", "score": 0.97, "top_k": [...]}]}
    curl -d '{"text_a": "Jesus wept.", "text_b": "Jesus cried."}' http://127.0.0.1:8080/v1/classify/bert_similarity
    -> {"model": "bert_similarity", "predictions": [{"probability": 0.98, "score": 3.9}]}
    curl -d '{"season": 1, "mnth": "Jan", "hr": 8, "temp": 0.24, ...}' http://127.0.0.1:8080/v1/predict/wide_deep
    -> {"model": "wide_deep", "predictions": [{"prediction": 123.4, "casual": 9.1, "registered": 114.3}]}

It accepts image uploads (multipart, any format Pillow reads, or a raw image/* body), base64 images
(plain or data: URLs), text, sentence pairs (`text_a`/`text_b`, or `q1`/`q2`) and, for tabular models,
the column values of one row (any other JSON object) or of several (`{"rows": [{...}, ...]}`). It checks
them, picks the model's signature from its metadata (`image_bytes` for images, `text` for text,
`text_a` + `text_b` for pairs, the row's columns for rows: the export contract in serving/README.md),
converts column values to the signature's dtypes ("8" -> 8 for an int64 column), calls the upstream's
TF Serving REST API (the embedded server or real TensorFlow Serving) and turns probabilities and label
names into a ranked list; other outputs come back by name, one object per row. `/v1/predict/<model>`
and `/v1/classify/<model>` are the same route. Served by gunicorn: worker processes, each with threads.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from urllib.parse import quote

import flask
import gunicorn.app.base
import orjson
import python_multipart
import urllib3
from absl import app as absl_app
from absl import flags
from PIL import ExifTags, Image, ImageOps
from python_multipart.multipart import parse_options_header
from werkzeug.exceptions import HTTPException

from . import tabular

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the binary's flags; only when it runs as one, so importing the app (tests) cannot clash
    with other binaries' flags (--host, --port, ...) in one process."""
    flags.DEFINE_string("upstream", "http://127.0.0.1:8501", "Base URL of the TF Serving REST API to call.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; 0.0.0.0 to accept other machines.")
    flags.DEFINE_integer("port", 8080, "Port to listen on; 0 picks a free one (printed at start).")
    flags.DEFINE_integer("workers", None, "Worker processes (gunicorn's), forked: each holds the Flask app and no "
                         "model (29 MB resident, 3 MB its own). Default: one per CPU core, at most 8.")
    flags.DEFINE_integer("threads", 4, "Threads per worker process.")
    flags.DEFINE_integer("max_request_bytes", 16 << 20, "Larger uploads are refused with HTTP 413.")
    flags.DEFINE_float("upstream_timeout", 30.0, "Seconds to wait for the model server.")
    flags.DEFINE_integer("top_k", 3, "Labels returned per input unless the request asks (?top_k=N).")
    flags.DEFINE_list("healthz_models", [], "Models /healthz checks on the upstream: each needs an AVAILABLE version. "
                      "Empty: /healthz checks only that the upstream answers.")


# Formats TF's decode_image reads in the exported graph; anything else Pillow opens is re-encoded as PNG.
_GRAPH_FORMATS = {"PNG", "JPEG", "GIF", "BMP"}
# Signature inputs of the export contract (serving/README.md).
_KINDS = {"image": ("image_bytes",), "text": ("text",), "pair": ("text_a", "text_b")}
_PAIR_KEYS = (("text_a", "text_b"), ("q1", "q2"))  # q1/q2: the question-pair datasets' names
_HEALTH_TIMEOUT = 2.0  # seconds: a health probe must answer quickly, even when predictions are slow


class ClientError(Exception):
    """An error answered as {"error": message} with an HTTP status (400 unless said otherwise)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def prepare_image(data: bytes, where: str) -> bytes:
    """Image bytes the exported graph can decode: checked, EXIF-rotated, re-encoded when needed."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files (even SyntaxError)
        raise ClientError(f"{where}: not a readable image ({type(e).__name__}: {e}).") from e
    upright = image.getexif().get(ExifTags.Base.Orientation, 1) in (0, 1)
    if image.format in _GRAPH_FORMATS and upright:  # as it is: no decode and encode again
        return data
    rotated = image if upright else ImageOps.exif_transpose(image)
    out = io.BytesIO()
    rotated.convert("RGBA" if "A" in rotated.getbands() else "RGB").save(out, format="PNG")
    return out.getvalue()


def _decode_b64(text, where: str) -> bytes:
    if not isinstance(text, str):
        raise ClientError(f"{where}: expected a base64 string, got {type(text).__name__}.")
    if text.startswith("data:"):  # data:image/png;base64,....
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None,
                                validate=True)
    except binascii.Error as e:
        raise ClientError(f"{where}: not valid base64 ({e}).") from e


def read_pairs(body: dict, first: str, second: str) -> list[dict]:
    """[{"text_a": a, "text_b": b}, ...] from two strings or two equally long lists of strings."""
    a, b = body[first], body[second]
    a, b = ([a], [b]) if isinstance(a, str) and isinstance(b, str) else (a, b)
    if not (isinstance(a, list) and isinstance(b, list) and a and len(a) == len(b)
            and all(isinstance(v, str) for v in a + b)):
        raise ClientError(f'"{first}" and "{second}" must be two strings or two lists of strings of the same length.')
    return [{"text_a": x, "text_b": y} for x, y in zip(a, b, strict=True)]


def read_json(request: flask.Request) -> object:
    """The request's JSON body, None when it carries none, or a 400 with the parser's message."""
    mimetype = request.mimetype or ""
    if mimetype.startswith(("multipart/", "image/")):
        return None
    data = request.get_data()
    # `curl -d` labels its body a form (application/x-www-form-urlencoded): one that opens like JSON is read as JSON.
    if not (request.is_json or (mimetype in ("", "application/x-www-form-urlencoded")
                                and data.lstrip().startswith(b"{"))):
        return None
    try:
        return json.loads(data)
    except ValueError as e:  # UnicodeDecodeError is one too
        raise ClientError(f"invalid JSON: {e}") from e
    except RecursionError as e:
        raise ClientError("invalid JSON: nested too deeply") from e


def read_uploads(request: flask.Request) -> list[tuple[str, bytes]]:
    """(file name or field name, bytes) of each file part of a multipart/form-data body, in the body's order.

    python-multipart's parser rather than werkzeug's (request.files): werkzeug compiles two regular
    expressions for every request's boundary, about 300 us of the middleware's 1.2 ms per upload.
    """
    if request.mimetype != "multipart/form-data":
        return []
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise ClientError("a multipart/form-data body needs a boundary in its Content-Type.")
    parts: list[dict] = []

    def on_part_begin():
        parts.append({"headers": {}, "field": b"", "value": b"", "data": []})

    def on_header_field(data, start, end):
        parts[-1]["field"] += data[start:end]

    def on_header_value(data, start, end):
        parts[-1]["value"] += data[start:end]

    def on_header_end():
        part = parts[-1]
        part["headers"][part["field"].decode("latin-1").lower()] = part["value"]
        part["field"] = part["value"] = b""

    parser = python_multipart.MultipartParser(boundary.encode("latin-1"), {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": lambda data, start, end: parts[-1]["data"].append(
            data[start:end])})
    try:
        parser.write(request.get_data())
        parser.finalize()
    except python_multipart.exceptions.MultipartParseError as e:
        raise ClientError(f"not a readable multipart/form-data body ({e}).") from e
    files = []
    for part in parts:
        _, options = parse_options_header(part["headers"].get("content-disposition", b""))
        if b"filename" in options:  # a file; other fields are not uploads
            name = (options[b"filename"] or options.get(b"name", b"")).decode("utf-8", errors="replace")
            files.append((name, b"".join(part["data"])))
    return files


def read_inputs(request: flask.Request) -> tuple[str, list]:
    """('image', [bytes, ...]), ('text', [str, ...]), ('pair', [{text_a, text_b}, ...]), or ('row' | 'rows',
    [{column: value}, ...]) from a multipart, raw image or JSON request."""
    body = read_json(request)
    files = read_uploads(request)
    if files:
        return "image", [prepare_image(data, f"file {name!r}") for name, data in files]
    if (request.mimetype or "").startswith("image/"):
        return "image", [prepare_image(request.get_data(), "request body")]
    if not isinstance(body, dict):
        raise ClientError("expected a multipart upload (-F image=@file.png), an image/* body, or a JSON object "
                          'with "image", "images", "text" or "texts", or of column values.')
    for first, second in _PAIR_KEYS:
        if first in body or second in body:
            if not (first in body and second in body) or len(body) != 2:
                raise ClientError(f'a sentence pair is {{"{first}": ..., "{second}": ...}} and nothing else; '
                                  f"got keys {sorted(body)}.")
            return "pair", read_pairs(body, first, second)
    keys = [k for k in ("image", "images", "text", "texts") if k in body]
    if not keys:  # none of the names above: the column values of a tabular model's row(s)
        try:
            return ("rows" if list(body) == ["rows"] else "row"), tabular.read_rows(body)
        except tabular.RowError as e:
            raise ClientError(str(e)) from e
    if len(keys) != 1:
        raise ClientError(f'give exactly one of "image", "images", "text", "texts" (or "text_a" with "text_b"); '
                          f"got keys {sorted(body)}.")
    key = keys[0]
    values = body[key] if key.endswith("s") else [body[key]]
    if not isinstance(values, list) or not values:
        raise ClientError(f'"{key}" must be a non-empty list.')
    if key.startswith("image"):
        return "image", [prepare_image(_decode_b64(v, f'"{key}"[{i}]'), f'"{key}"[{i}]') for i, v in enumerate(values)]
    if not all(isinstance(v, str) for v in values):
        raise ClientError(f'"{key}" must hold strings.')
    return "text", values


def _loads(data: bytes):
    """JSON with orjson, or with the json module for what orjson refuses (NaN and Infinity, which TF Serving writes)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


class Upstream:
    """The model server's REST API, over a pool of keep-alive connections, with cached signatures.

    urllib3 (requests' own transport) directly: requests' per-call work (merging proxy settings from the
    environment, preparing the request) took 40% of the middleware's Python time under load.
    """

    def __init__(self, url: str, timeout: float, metadata_ttl: float = 10.0, connections: int = 16):
        self.url, self.timeout, self.metadata_ttl = url.rstrip("/"), timeout, metadata_ttl
        self._pool = urllib3.PoolManager(maxsize=connections, retries=False)
        self._metadata: dict[str, tuple[float, dict]] = {}

    def _request(self, method: str, path: str, timeout: float, body: bytes | None = None) -> urllib3.BaseHTTPResponse:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            return self._pool.request(method, self.url + path, body=body, headers=headers, timeout=timeout)
        except urllib3.exceptions.NewConnectionError as e:  # refused, or no such host (urllib3 counts it a timeout)
            raise ClientError(f"model server at {self.url} is unreachable ({type(e).__name__}).", 502) from e
        except urllib3.exceptions.TimeoutError as e:
            raise ClientError(f"model server at {self.url} did not answer within {timeout:g} s.", 504) from e
        except urllib3.exceptions.HTTPError as e:  # reset, a broken answer
            raise ClientError(f"model server at {self.url} is unreachable ({type(e).__name__}).", 502) from e

    def call(self, method: str, path: str, timeout: float | None = None, json: object = None) -> dict:
        """One REST call, with `json` as its body; upstream errors become ClientErrors with the upstream's message
        and status."""
        try:
            body = None if json is None else orjson.dumps(json)
        except orjson.JSONEncodeError as e:  # e.g. a lone surrogate, which json.loads lets through in a request
            raise ClientError(f"the request holds a value that cannot be sent on as JSON: {e}") from e
        response = self._request(method, path, self.timeout if timeout is None else timeout, body)
        try:
            payload = _loads(response.data)
            if not isinstance(payload, dict):
                raise ValueError(payload)
        except (ValueError, RecursionError):  # orjson.JSONDecodeError and UnicodeDecodeError are ValueErrors
            payload = {"error": response.data[:200].decode("utf-8", errors="replace")}
        if response.status != 200:
            raise ClientError(f"model server: {payload.get('error', payload)}",
                              response.status if response.status < 500 else 502)
        return payload

    def health(self, models: Sequence[str]) -> dict[str, dict[str, str]]:
        """{model: {version: state}} from the upstream's status API; a ClientError unless each model has an
        AVAILABLE version, or, with no models named, unless the upstream answers HTTP at all."""
        timeout = min(self.timeout, _HEALTH_TIMEOUT)
        if not models:
            # TF Serving has no URL listing its models; any HTTP answer (the embedded server's is a 400) shows it is up.
            self._request("GET", "/v1/models", timeout)
        states = {}
        for model in models:
            try:
                versions = self.call("GET", f"/v1/models/{quote(model, safe='')}", timeout)["model_version_status"]
            except ClientError as e:
                raise ClientError(f"model {model!r}: {e}") from e
            states[model] = {v["version"]: v["state"] for v in versions}
            if "AVAILABLE" not in states[model].values():
                raise ClientError(f"model {model!r} has no AVAILABLE version (versions: {states[model]}).")
        return states

    def signatures(self, model_path: str) -> dict:
        """{name: signature def} from the model's metadata, as TF Serving writes it; cached for metadata_ttl."""
        cached = self._metadata.get(model_path)
        if cached is None or time.monotonic() - cached[0] > self.metadata_ttl:
            cached = (time.monotonic(), self.call("GET", model_path + "/metadata")["metadata"]["signature_def"])
            self._metadata[model_path] = cached
        return cached[1]["signature_def"]

    def signature_for(self, model_path: str, kind: str) -> str:
        """The signature whose inputs are the contract's names for this kind of input."""
        signatures = self.signatures(model_path)
        for name in sorted(signatures, key=lambda n: n != "serving_default"):
            if sorted(signatures[name].get("inputs", {})) == sorted(_KINDS[kind]):
                return name
        raise ClientError(f"this model takes no {kind}: none of its signatures {sorted(signatures)} has exactly the "
                          f"input(s) {', '.join(_KINDS[kind])}.")


def ranked(prediction: dict, top_k: int) -> dict:
    """Labels sorted by score from the contract's probabilities and label_names outputs."""
    pairs = sorted(zip(prediction["label_names"], prediction["probabilities"]), key=lambda p: -p[1])[:top_k]
    top = [{"label": label, "score": round(score, 6)} for label, score in pairs]
    return {"label": top[0]["label"], "score": top[0]["score"], "top_k": top}


def row_request(signatures: dict, kind: str, rows: list[dict]) -> tuple[str, list[dict]]:
    """The signature taking exactly the rows' columns, and the rows typed as its inputs want."""
    try:
        signature = tabular.choose_signature(signatures, list(rows[0]))
        return signature, tabular.typed_rows(rows, signatures[signature]["inputs"], batched=kind == "rows")
    except tabular.RowError as e:
        raise ClientError(str(e)) from e


def create_app(upstream: Upstream, max_request_bytes: int = 16 << 20, default_top_k: int = 3,
               health_models: Sequence[str] = ()) -> flask.Flask:
    """The WSGI application: POST /v1/classify/<model> (also /v1/predict/<model>), plus / (usage) and /healthz,
    which checks `health_models` on the upstream."""
    app = flask.Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes

    @app.get("/")
    def index():
        return {"usage": {"POST /v1/classify/<model>[?version=N|label=L][&top_k=K]":
                          "multipart image upload, an image/* body, or JSON {image|images: base64} / "
                          "{text|texts: ...} / {text_a, text_b} (or {q1, q2}): strings or lists",
                          "POST /v1/predict/<model>[?version=N|label=L]":
                          "the same route; for tabular models JSON column values of one row {column: value, ...} "
                          "or of several {rows: [{...}, ...]}"},
                "upstream": upstream.url}

    @app.get("/healthz")
    def healthz():
        try:
            models = upstream.health(health_models)
        except ClientError as e:  # 503 whatever the cause: a load balancer then sends no traffic here
            return {"status": "unavailable", "upstream": upstream.url, "error": str(e)}, 503
        return {"status": "ok", "upstream": upstream.url, "models": models}

    @app.post("/v1/classify/<model>")
    @app.post("/v1/predict/<model>")  # an alias: a regression model predicts, it does not classify
    def predict(model):
        version, label = flask.request.args.get("version"), flask.request.args.get("label")
        path = f"/v1/models/{quote(model, safe='')}" + (
            f"/versions/{version}" if version else f"/labels/{quote(label, safe='')}" if label else "")
        try:
            top_k = int(flask.request.args.get("top_k", default_top_k))
        except ValueError:
            top_k = 0
        try:
            if top_k < 1:
                raise ClientError(f"top_k must be a positive integer, got {flask.request.args.get('top_k')!r}.")
            if version is not None and not version.isdigit():
                raise ClientError(f"version must be a number, got {version!r}.")
            kind, values = read_inputs(flask.request)
            outputs = None
            if kind in ("row", "rows"):
                signatures = upstream.signatures(path)
                signature, instances = row_request(signatures, kind, values)
                outputs = sorted(signatures[signature].get("outputs", {}))
            else:
                signature = upstream.signature_for(path, kind)
                instances = [{"b64": base64.b64encode(v).decode("ascii")} for v in values] if kind == "image" \
                    else values
            result = upstream.call("POST", path + ":predict",
                                   json={"signature_name": signature, "instances": instances})
        except ClientError as e:
            return {"error": str(e)}, e.status
        predictions = result["predictions"]
        if outputs is not None and len(outputs) == 1:
            # TF Serving's row format drops the name of a lone output; a row's answer keeps it: [{"prediction": 1.5}]
            predictions = [{outputs[0]: p} for p in predictions]
        if not all(isinstance(p, dict) and {"probabilities", "label_names"} <= set(p) for p in predictions):
            return {"model": model, "signature_name": signature, "predictions": predictions}
        return {"model": model, "signature_name": signature, "predictions": [ranked(p, top_k) for p in predictions]}

    @app.errorhandler(413)
    def too_large(_):
        return {"error": f"request body exceeds {max_request_bytes} bytes (--max_request_bytes)."}, 413

    @app.errorhandler(404)
    def not_found(_):
        return {"error": f"no route {flask.request.method} {flask.request.path}; POST /v1/classify/<model> or "
                         "/v1/predict/<model>."}, 404

    @app.errorhandler(405)
    def bad_method(_):
        return {"error": f"{flask.request.method} is not allowed on {flask.request.path}."}, 405

    @app.errorhandler(Exception)
    def internal(e):
        if isinstance(e, HTTPException):  # other HTTP errors keep their status, with a JSON body
            return {"error": e.description}, e.code
        app.logger.exception("Request failed: %s %s", flask.request.method, flask.request.path)
        return {"error": f"Internal error: {type(e).__name__}: {e}"}, 500

    return app


def main(argv: list[str]) -> None:
    """Serves the middleware until interrupted."""
    del argv
    if not FLAGS.upstream.startswith(("http://", "https://")):
        print(f"error: --upstream={FLAGS.upstream!r}: expected a URL such as http://127.0.0.1:8501", file=sys.stderr)
        sys.exit(2)
    app = create_app(Upstream(FLAGS.upstream, FLAGS.upstream_timeout), FLAGS.max_request_bytes, FLAGS.top_k,
                     FLAGS.healthz_models)
    try:
        family = socket.AF_INET6 if ":" in FLAGS.host else socket.AF_INET
        sock = socket.create_server((FLAGS.host, FLAGS.port), family=family, backlog=2048)
    except OSError as e:
        reason = (e.strerror or str(e)).split(" (while attempting")[0]
        print(f"error: cannot listen on {FLAGS.host}:{FLAGS.port} (--host, --port): {reason}", file=sys.stderr)
        sys.exit(2)
    workers = FLAGS.workers or min(os.cpu_count() or 1, 8)
    print(f"Middleware at: http://{FLAGS.host}:{sock.getsockname()[1]} -> {FLAGS.upstream} ({workers} worker processes "
          f"x {FLAGS.threads} threads)", flush=True)
    # Processes, not only threads: the middleware holds no model, so a process costs little memory, and its
    # Python work (multipart parsing, Pillow, JSON) then runs on every core instead of behind one GIL.
    _Gunicorn(app, {"bind": [f"fd://{sock.detach()}"], "workers": workers, "threads": FLAGS.threads,
                    "worker_class": "gthread", "keepalive": 5, "graceful_timeout": 5,
                    "timeout": int(FLAGS.upstream_timeout) + 30, "loglevel": "warning", "accesslog": None}).run()


class _Gunicorn(gunicorn.app.base.BaseApplication):
    """gunicorn's arbiter (pre-forked worker processes, restarted if they die) around an app built here."""

    def __init__(self, app: flask.Flask, options: dict):
        self.application, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> flask.Flask:
        return self.application


if __name__ == "__main__":
    define_flags()
    absl_app.run(main)
