"""The end of `make demo`: serve the fresh exports, call them once with each client, stop.

    python -m serving.demo --model_config_file=serving/models.config --image=IMAGE.png --text="..."

Starts the embedded server (free port) and the middleware in front of it, then sends one request with
the curl script, one with the requests client (to the `canary` label) and one through the middleware,
printing each command and its answer. Exits non-zero if any call fails.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from absl import app, flags

from . import processes

flags.DEFINE_string("model_config_file", "serving/models.config", "Models to serve (ModelServerConfig text).")
flags.DEFINE_string("image", None, "An image file for the image model.")
flags.DEFINE_string("image_model", "cnn_vision", "Model name of the image classifier.")
flags.DEFINE_string("text", None, "A text for the text model (skipped when not given).")
flags.DEFINE_string("text_model", "word2vec_lstm", "Model name of the text classifier.")
FLAGS = flags.FLAGS

CLIENTS = os.path.join("serving", "clients")


def _call(command: list[str]) -> bool:
    print(f"\n$ {shlex.join(command)}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    print((result.stdout + result.stderr).strip(), flush=True)
    return result.returncode == 0


def main(argv: list[str]) -> None:
    """Starts both servers, runs each client once, stops them."""
    del argv
    if not FLAGS.image or not os.path.isfile(FLAGS.image):
        sys.exit(f"error: --image={FLAGS.image}: no such image file")
    print(f"Starting the embedded server on {FLAGS.model_config_file} ...", flush=True)
    with processes.start_server(f"--model_config_file={FLAGS.model_config_file}") as server, \
            processes.start_middleware(server.url) as middleware:
        print(f"Model server: {server.url}   middleware: {middleware.url}", flush=True)
        models = f"{server.url}/v1/models"
        python = [sys.executable, os.path.join(CLIENTS, "predict.py")]
        calls = [
            [os.path.join(CLIENTS, "predict.sh"), f"{models}/{FLAGS.image_model}", FLAGS.image],
            python + [f"{models}/{FLAGS.image_model}/labels/canary", "--image", FLAGS.image],
            python + [f"{middleware.url}/v1/classify/{FLAGS.image_model}", "--image", FLAGS.image],
        ]
        if FLAGS.text:
            calls += [python + [f"{models}/{FLAGS.text_model}", "--text", FLAGS.text],
                      [os.path.join(CLIENTS, "predict.sh"), f"{middleware.url}/v1/classify/{FLAGS.text_model}",
                       "--text", FLAGS.text]]
        failed = [c for c in calls if not _call(c)]
    print("\nStopped the server and the middleware.")
    if failed:
        sys.exit(f"error: {len(failed)} of {len(calls)} calls failed")


if __name__ == "__main__":
    app.run(main)
