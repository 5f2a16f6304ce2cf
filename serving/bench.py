"""Serving throughput and latency, side by side: the SavedModel called in-process, the embedded server, the
middleware, and the tutorial way (Flask's development server around the same SavedModel), at 1, 8 and 32
concurrent clients (cnn_vision, and word2vec_lstm's raw text without the middleware and the baseline); then
every other project's export at 1 and 4 clients beside its in-process call.

    python -m serving.bench --export_dir=runs/cnn_vision/default/export/2 --image=IMAGE.png \
        --text_export_dir=runs/word2vec_lstm/default/export/1 --json=serving_bench.json

Every row is one example per request, from --clients concurrent clients for --seconds each. The ratio
column divides by the baseline's requests/second at the same number of clients. `--json` also writes
the rows as a JSON list of {row, model, clients, requests_per_s, p50_ms, p99_ms, failed}. Before the
load, one request of each kind is taken apart: what parsing the JSON, converting it to tensors, running
the model and encoding the answer cost inside the server, and what is left for HTTP.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import tensorflow as tf
from absl import app, flags

from . import loadtest, models, processes, rest, server

flags.DEFINE_string("export_dir", None, "A version folder of cnn_vision's export (an image classifier).", required=True)
flags.DEFINE_string("image", None, "A PNG or JPEG file to send.", required=True)
flags.DEFINE_string("text_export_dir", None, "A version folder of word2vec_lstm's export (raw text in).")
flags.DEFINE_string("text", "Shares fell sharply after the company issued a profit warning", "Text to classify.")
flags.DEFINE_string("transformer_export_dir", None, "A version folder of transformer's export (beam search).")
flags.DEFINE_string("bert_similarity_export_dir", None, "A version folder of bert_similarity's export.")
flags.DEFINE_string("wide_deep_export_dir", None, "A version folder of wide_deep's export (Bikeshare columns).")
flags.DEFINE_list("clients", ["1", "8", "32"], "Concurrent clients of the cnn_vision and word2vec_lstm rows.")
flags.DEFINE_list("project_clients", ["1", "4"], "Concurrent clients of the other projects' rows.")
flags.DEFINE_float("seconds", 10.0, "Seconds of load per row.")
flags.DEFINE_string("json", None, "Also write every row to this file as a JSON list.")
flags.DEFINE_string("batching_parameters_file", "serving/docker/batching.config",
                    "BatchingParameters of the '+ batching' rows.")
FLAGS = flags.FLAGS

# One example per project with an export beyond the two above: its signature's inputs, as a request row.
SAMPLES = {
    "transformer": {"text": "could not open file"},
    "bert_similarity": {"text_a": "Jesus wept.", "text_b": "Jesus cried."},
    "wide_deep": {"season": 1, "mnth": "Jan", "hr": 8, "holiday": 0, "weekday": 6, "workingday": 0,
                  "weathersit": "clear", "temp": 0.24, "atemp": 0.29, "hum": 0.81, "windspeed": 0.0},
}


_IN_PROCESS = {"pixels JSON": "in-process pixels", "b64 PNG": "in-process b64"}  # cnn_vision's in-process rows


class _Done:
    status_code = 200


class Rows(list):
    """The measured rows as dicts, each printed as a line when it is added: the table comes at the end."""

    def add(self, model: str, row: str, result: dict) -> None:
        """Adds one load result under a label."""
        self.append({"row": row, "model": model, "clients": result["clients"],
                     "requests_per_s": round(result["requests_per_second"], 1), "p50_ms": round(result["p50_ms"], 2),
                     "p99_ms": round(result["p99_ms"], 2), "failed": result["failures"],
                     "failure_examples": result["failure_examples"]})
        print(f"measured {model} {row}, {result['clients']} clients: {loadtest.summary(result)}", flush=True)

    def find(self, model: str, row: str, clients: int) -> dict | None:
        """The row with this label, or None."""
        return next((r for r in self if (r["model"], r["row"], r["clients"]) == (model, row, clients)), None)


def _in_process(signature, inputs: dict) -> Callable:
    """The ceiling: the signature called on tensors from client threads, no HTTP and no JSON."""
    tensors = {name: tf.constant(value) for name, value in inputs.items()}

    def send(_connection):
        signature(**tensors)
        return _Done()

    return send


def _post(url: str, body: bytes) -> Callable:
    headers = {"Content-Type": "application/json"}
    return lambda connection: connection.post(url, data=body, headers=headers, timeout=120)


def _median_us(function: Callable, repeats: int = 200) -> float:
    for _ in range(10):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def stage_costs(servable: models.SavedModelVersion, body: bytes) -> dict[str, float]:
    """Median microseconds of each stage the server runs for one request body, called as the server calls them."""
    call = server.PredictCall(servable, body, batching_on=False)
    request, specs = rest.parse_json(body), servable.input_specs(call.signature)
    outputs = call.run()
    return {"parse JSON": _median_us(lambda: rest.parse_json(body)),
            "to numpy": _median_us(lambda: rest.request_inputs(request, specs)),
            "run the signature": _median_us(call.run),
            "encode the answer": _median_us(lambda: rest.dumps(call.answer(outputs))),
            "answer bytes": float(len(rest.dumps(call.answer(outputs))))}


def _config_file(exports: dict[str, str]) -> str:
    """A model config serving exactly these version folders (not the newest beside them)."""
    entries = []
    for name, export_dir in exports.items():
        base, version = os.path.split(export_dir)
        entries.append(f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" '
                       f"model_version_policy {{ specific {{ versions: {version} }} }} }}")
    config = tempfile.NamedTemporaryFile("w", suffix=".config", delete=False)
    config.write("model_config_list { " + " ".join(entries) + " }")
    config.close()
    return config.name


def _version_folder(flag: str, value: str) -> str:
    path = os.path.abspath(value.rstrip("/"))
    if not (os.path.basename(path).isdigit() and os.path.isfile(os.path.join(path, "saved_model.pb"))):
        raise SystemExit(f"error: --{flag}={value}: expected an export's version folder such as .../export/2 "
                         "(with saved_model.pb)")
    return path


def print_table(rows: Rows) -> None:
    """Every row with its ratio to the baseline at the same number of clients."""
    width = max(len(f"{r['model']}: {r['row']}") for r in rows)
    print(f"\n{'':<{width}} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'vs baseline':>12}")
    for r in rows:
        baseline = rows.find(r["model"], "baseline", r["clients"])
        ratio = f"{r['requests_per_s'] / baseline['requests_per_s']:.2f}x" if baseline else ""
        print(f"{r['model'] + ': ' + r['row']:<{width}} {r['clients']:>7d} {r['requests_per_s']:>8.1f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['failed']:>7d} {ratio:>12}")


def main(argv: list[str]) -> None:
    """Takes one request of each kind apart, measures every row, prints the table and writes the JSON."""
    del argv
    png = open(FLAGS.image, "rb").read()
    pixels = tf.io.decode_image(png, channels=1).numpy()
    exports = {"cnn_vision": _version_folder("export_dir", FLAGS.export_dir)}
    for name in ("text", "transformer", "bert_similarity", "wide_deep"):
        value = getattr(FLAGS, f"{name}_export_dir")
        if value:
            exports["word2vec_lstm" if name == "text" else name] = _version_folder(f"{name}_export_dir", value)
    clients = [int(c) for c in FLAGS.clients]
    project_clients = [int(c) for c in FLAGS.project_clients]
    config = _config_file(exports)
    server_args = [f"--model_config_file={config}", "--file_system_poll_wait_seconds=0"]
    batching = [*server_args, "--enable_batching", f"--batching_parameters_file={FLAGS.batching_parameters_file}"]

    # Request bodies, as TF Serving's REST API takes them.
    bodies = {("cnn_vision", "pixels JSON"): {"instances": [pixels.tolist()]},
              ("cnn_vision", "b64 PNG"): {"signature_name": "serving_bytes",
                                          "instances": [{"b64": base64.b64encode(png).decode()}]}}
    if "word2vec_lstm" in exports:
        bodies["word2vec_lstm", "text JSON"] = {"instances": [FLAGS.text]}
    for name, sample in SAMPLES.items():
        if name in exports:
            bodies[name, "JSON"] = {"instances": [sample if len(sample) > 1 else next(iter(sample.values()))]}
    bodies = {key: json.dumps(body).encode() for key, body in bodies.items()}

    servables = {name: models.SavedModelVersion(name, int(os.path.basename(path)), path)
                 for name, path in exports.items()}
    print(f"Serving benchmark: {FLAGS.seconds:g} s per row; cnn_vision and word2vec_lstm at {clients} clients, the "
          f"other projects at {project_clients}.\n\nWhere one request's time goes inside the server (median "
          "microseconds):", flush=True)
    costs = {key: stage_costs(servables[key[0]], body) for key, body in bodies.items()}
    for (model, kind), cost in costs.items():
        print(f"  {model} {kind}: " + ", ".join(f"{stage} {value:.0f}" for stage, value in cost.items()), flush=True)
    # TensorFlow's objects leave the collector's generations, as the server does: a full collection over them
    # would stall the in-process rows for about 100 ms now and then.
    gc.freeze()

    def in_process(model: str, kind: str) -> Callable:
        call = server.PredictCall(servables[model], bodies[model, kind], batching_on=False)
        return _in_process(call.servable.signatures[call.signature], call.inputs)

    rows = Rows()
    for n in clients:
        for kind in ("pixels JSON", "b64 PNG"):
            rows.add("cnn_vision", _IN_PROCESS[kind], loadtest.run_load(
                in_process("cnn_vision", kind), n, FLAGS.seconds))
    try:
        _measure(rows, bodies, in_process, server_args, batching, png, exports, clients, project_clients)
    finally:
        os.remove(config)
    print_table(rows)
    _print_summary(rows, costs, clients)
    _write(rows)


def _measure(rows, bodies, in_process, server_args, batching, png, exports, clients, project_clients) -> None:
    """Every row after the in-process ones of cnn_vision: the baseline, both servers and the middleware."""
    with processes.Child("serving.baseline", [f"--export_dir={exports['cnn_vision']}", "--port=0"],
                         "Running on") as baseline:
        for n in clients:
            rows.add("cnn_vision", "baseline", loadtest.run_load(
                _post(f"{baseline.url}/predict", bodies["cnn_vision", "pixels JSON"]), n, FLAGS.seconds))
    with processes.start_server(*server_args) as plain:
        for (model, kind), body in bodies.items():
            url = f"{plain.url}/v1/models/{model}:predict"
            for n in (clients if model in ("cnn_vision", "word2vec_lstm") else project_clients):
                if model != "cnn_vision":
                    rows.add(model, "in-process", loadtest.run_load(in_process(model, kind), n, FLAGS.seconds))
                rows.add(model, f"server {kind}", loadtest.run_load(_post(url, body), n, FLAGS.seconds))
    with processes.start_server(*batching) as batched, processes.start_middleware(batched.url) as middleware:
        for (model, kind), body in bodies.items():
            if model in ("cnn_vision", "word2vec_lstm"):
                for n in clients:
                    rows.add(model, f"server + batching {kind}", loadtest.run_load(
                        _post(f"{batched.url}/v1/models/{model}:predict", body), n, FLAGS.seconds))
        for n in clients:
            rows.add("cnn_vision", "middleware PNG upload -> server + batching", loadtest.run_load(
                lambda connection: connection.post(f"{middleware.url}/v1/classify/cnn_vision", timeout=120,
                                                   files={"image": ("image.png", png)}), n, FLAGS.seconds))


def _print_summary(rows: Rows, costs: dict, clients: list[int]) -> None:
    """The overhead of HTTP at one client and the batching server's share of the in-process throughput."""
    print("\nWhat HTTP costs one client, one request at a time (server p50 minus in-process p50), beside what the "
          "server's stages cost inside (median microseconds):")
    for (model, kind), cost in costs.items():
        served = rows.find(model, f"server {kind}", 1)
        alone = rows.find(model, _IN_PROCESS.get(kind, "in-process"), 1)
        if served and alone:
            print(f"  {model} {kind}: {served['p50_ms'] - alone['p50_ms']:+.2f} ms; " + ", ".join(
                f"{stage} {value:.0f}" for stage, value in cost.items() if stage != "answer bytes"))
    for n in clients:
        for kind, label in _IN_PROCESS.items():
            batched = rows.find("cnn_vision", f"server + batching {kind}", n)
            ceiling = rows.find("cnn_vision", label, n)
            if batched and ceiling:
                share = batched["requests_per_s"] / ceiling["requests_per_s"]
                print(f"  cnn_vision {kind}, {n} clients: server + batching at {share:.0%} of the in-process "
                      f"throughput, p99 {batched['p99_ms'] / batched['p50_ms']:.1f}x its p50")
        middleware = rows.find("cnn_vision", "middleware PNG upload -> server + batching", n)
        upstream = rows.find("cnn_vision", "server + batching b64 PNG", n)
        baseline = rows.find("cnn_vision", "baseline", n)
        if middleware and upstream and baseline:
            ratio = middleware["requests_per_s"] / baseline["requests_per_s"]
            print(f"  cnn_vision middleware, {n} clients: {ratio:.2f}x the baseline's requests/s, p50 "
                  f"{middleware['p50_ms'] - upstream['p50_ms']:+.2f} ms over the server's")


def _write(rows: Rows) -> None:
    """The JSON file, then a non-zero exit if any request failed."""
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "failure_examples"} for r in rows], f, indent=1)
        print(f"\nWrote {len(rows)} rows to {FLAGS.json}")
    failed = [r for r in rows if r["failed"]]
    if failed:
        raise SystemExit("error: some requests failed: " + "; ".join(
            f"{r['model']} {r['row']} ({r['clients']} clients): {r['failure_examples'][:1]}" for r in failed))


if __name__ == "__main__":
    app.run(main)
