"""Serving throughput and latency, side by side: the embedded server, the middleware, the SavedModel
in-process, and the tutorial way (Flask's development server around the same SavedModel).

    python -m serving.bench --export_dir=runs/cnn_vision/default/export/2 --image=IMAGE.png

Every row is the same model answering one image per request, with --clients concurrent clients for
--seconds each; the ratio column divides by the baseline's requests/second.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile

import tensorflow as tf
from absl import app, flags

from . import loadtest, processes

flags.DEFINE_string("export_dir", None, "A SavedModel version folder of an image classifier.", required=True)
flags.DEFINE_string("image", None, "A PNG or JPEG file to send.", required=True)
flags.DEFINE_integer("clients", 8, "Concurrent clients.")
flags.DEFINE_float("seconds", 20.0, "Seconds of load per row.")
FLAGS = flags.FLAGS


class _Done:
    status_code = 200


def _in_process(export_dir: str, png: bytes) -> dict:
    """The ceiling: the signature called from client threads, no HTTP and no JSON."""
    signature = tf.saved_model.load(export_dir).signatures["serving_bytes"]
    images = tf.constant([png])

    def send(_session):
        signature(image_bytes=images)
        return _Done()

    return loadtest.run_load(send, FLAGS.clients, FLAGS.seconds)


class Rows(list):
    """(label, load result) rows, each printed as a line when it is appended: the table comes at the end."""

    def append(self, row: tuple[str, dict]) -> None:
        super().append(row)
        name, r = row
        print(f"measured {name}: {r['requests_per_second']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
              f"{r['failures']} failed", flush=True)


def main(argv: list[str]) -> None:
    """Measures every row and prints the table."""
    del argv
    png = open(FLAGS.image, "rb").read()
    pixels = tf.io.decode_image(png, channels=1).numpy()
    model_name = "bench"
    export_dir = os.path.abspath(FLAGS.export_dir.rstrip("/"))
    if not os.path.basename(export_dir).isdigit():
        raise SystemExit(f"error: --export_dir={FLAGS.export_dir}: expected a version folder such as .../export/2")
    # Serve exactly this version (not the newest beside it), as the in-process row loads it.
    config = tempfile.NamedTemporaryFile("w", suffix=".config", delete=False)
    config.write(f'model_config_list {{ config {{ name: "{model_name}" base_path: "{os.path.dirname(export_dir)}" '
                 f'model_platform: "tensorflow" model_version_policy {{ specific {{ versions: '
                 f'{os.path.basename(export_dir)} }} }} }} }}')
    config.close()
    server_args = [f"--model_config_file={config.name}", "--file_system_poll_wait_seconds=0"]
    pixel_body = json.dumps({"instances": [pixels.tolist()]})
    b64_body = json.dumps({"signature_name": "serving_bytes", "instances": [{"b64": base64.b64encode(png).decode()}]})
    headers = {"Content-Type": "application/json"}

    def post(url, body):
        return lambda s: s.post(url, data=body, headers=headers, timeout=60)

    rows = Rows()
    print(f"Serving benchmark: {FLAGS.export_dir}, one {pixels.shape} image per request, {FLAGS.clients} clients, "
          f"{FLAGS.seconds:g} s per row.", flush=True)
    with processes.Child("serving.baseline", [f"--export_dir={FLAGS.export_dir}", "--port=0"], "Running on") as base_:
        rows.append(("baseline: Flask dev server, pixels JSON", loadtest.run_load(
            post(f"{base_.url}/predict", pixel_body), FLAGS.clients, FLAGS.seconds)))
    with processes.start_server(*server_args) as server:
        predict = f"{server.url}/v1/models/{model_name}:predict"
        rows.append(("embedded server, pixels JSON", loadtest.run_load(post(predict, pixel_body), FLAGS.clients,
                                                                       FLAGS.seconds)))
        rows.append(("embedded server, b64 PNG", loadtest.run_load(post(predict, b64_body), FLAGS.clients,
                                                                   FLAGS.seconds)))
        with processes.start_middleware(server.url) as middleware:
            rows.append(("middleware (PNG upload) -> embedded", loadtest.run_load(
                lambda s: s.post(f"{middleware.url}/v1/classify/{model_name}", files={"image": ("a.png", png)},
                                 timeout=60), FLAGS.clients, FLAGS.seconds)))
    with processes.start_server(*server_args, "--enable_batching",
                                "--batching_parameters_file=serving/docker/batching.config") as server:
        predict = f"{server.url}/v1/models/{model_name}:predict"
        rows.append(("embedded server + batching, b64 PNG", loadtest.run_load(post(predict, b64_body), FLAGS.clients,
                                                                              FLAGS.seconds)))
    rows.append(("SavedModel in-process (no HTTP)", _in_process(FLAGS.export_dir, png)))

    baseline = rows[0][1]["requests_per_second"]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'':<{width}} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'vs baseline':>12}")
    for name, r in rows:
        print(f"{name:<{width}} {r['requests_per_second']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['failures']:>7d} {r['requests_per_second'] / baseline:>11.2f}x")
    os.remove(config.name)
    if any(r["failures"] for _, r in rows):
        raise SystemExit("error: some requests failed: " + "; ".join(
            f"{name}: {r['failure_examples'][:1]}" for name, r in rows if r["failures"]))


if __name__ == "__main__":
    app.run(main)
