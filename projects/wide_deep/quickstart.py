r"""The first ten minutes in two: one project end to end on real data, each step a command you can rerun.

    make quickstart
    python -m projects.wide_deep.quickstart [--gin_file=projects/wide_deep/configs/cyclical.gin] \
        [--data_dir=data/wide_deep/bikeshare] [--model_dir=runs/wide_deep/quickstart] [--seed=42]

Prepares the Bikeshare table, fits the gradient-boosted trees it is compared with, trains wide & deep
(`cyclical.gin`, about half a minute on 2 cores), evaluates it beside the trees (with the predicted-vs-true
picture), exports it, starts the embedded model server on the export, sends it one test row with curl as
TF Serving's REST API takes it, and stops the server. Each step prints the command it runs and what it
gave; the binaries' full output goes to `<model_dir>/quickstart.log`. Run it again and it keeps what is
done (the prepared data, the finished training, the export) and repeats the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time

from absl import app, flags

# --gin_file, --gin_bindings, --model_dir and --seed are core's flags, which every binary takes; here they
# go to `train` (the config, default cyclical.gin; further bindings; the run's folder; the seed).
from core import config as core_config

flags.adopt_module_key_flags(core_config)
flags.DEFINE_string("data_dir", "data/wide_deep/bikeshare", "Where the prepared table goes (kept if there).")
FLAGS = flags.FLAGS

DEFAULT_CONFIG = "projects/wide_deep/configs/cyclical.gin"
DEFAULT_MODEL_DIR = "runs/wide_deep/quickstart"

MODEL_NAME = "wide_deep"
STEPS = 7


class StepFailed(Exception):
    """A command of the quickstart exited non-zero; the message says which and where its output is."""


class Quickstart:
    """Runs the steps, each as the command a user would type, timing them and logging their output."""

    def __init__(self, log_path: str):
        self.log_path = log_path
        self.step = 0
        self.started = time.monotonic()

    def header(self, what: str) -> None:
        self.step += 1
        print(f"\n[{self.step}/{STEPS}] {what}", flush=True)

    def run(self, module: str, *args: str, show: int = 0) -> str:
        """Runs `python -m module args`, appends its output to the log; prints its last `show` lines."""
        command = [sys.executable, "-m", module, *args]
        print(f"  $ python -m {module} {shlex.join(args)}", flush=True)
        start = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        with open(self.log_path, "a") as log:
            log.write(f"$ {shlex.join(command)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise StepFailed(f"step {self.step} failed (exit {result.returncode}): python -m {module} "
                             f"{shlex.join(args)}\n{tail}\nThe whole output is in {self.log_path}.")
        for line in [line for line in result.stdout.strip().splitlines() if line.strip()][-show:] if show else []:
            print(f"    {line}", flush=True)
        print(f"  done in {time.monotonic() - start:.0f} s", flush=True)
        return result.stdout

    def kept(self, path: str) -> None:
        print(f"  kept {path} (there from an earlier run; delete it to redo this step)", flush=True)


@contextlib.contextmanager
def _quiet_stderr():
    """Sends file descriptor 2 to /dev/null for the block: TensorFlow 2.21 prints its start-up lines (oneDNN,
    CUDA) from C++ whatever TF_CPP_MIN_LOG_LEVEL says, and here it only reads one row."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _test_row(data_dir: str) -> tuple[dict, float]:
    """The first row of the test split as a client sends it (JSON values), and its true target."""
    with _quiet_stderr():
        from . import data

        features, targets = data.load_arrays(data_dir, "test")

    def plain(value):  # as a person would type it: 0.2, not float32's 0.20000000298023224
        value = value.item() if hasattr(value, "item") else value
        return value.decode() if isinstance(value, bytes) else float(f"{value:.6g}") if isinstance(value, float) \
            else value

    row = {c: plain(v[0]) for c, v in features.items()}
    target = next(iter(targets))
    return row, float(targets[target][0])


def _serve_and_curl(quickstart: Quickstart, export_dir: str, data_dir: str) -> None:
    from serving import processes

    row, truth = _test_row(data_dir)
    print(f"  $ python -m serving.server --rest_api_port=0 --model_name={MODEL_NAME} --model_base_path={export_dir}"
          "   # port 0: any free port", flush=True)
    start = time.monotonic()
    with processes.start_server(f"--model_name={MODEL_NAME}", f"--model_base_path={os.path.abspath(export_dir)}") \
            as server:
        status = f"{server.url}/v1/models/{MODEL_NAME}"
        deadline = time.monotonic() + 60
        while subprocess.run(["curl", "-sf", status], capture_output=True, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise StepFailed(f"the server did not load the export within 60 s; its log:\n{server.log()[-2000:]}")
            time.sleep(0.3)
        print(f"  serving at {server.url} (ready in {time.monotonic() - start:.0f} s)", flush=True)
        quickstart.header("One request with curl, as TF Serving's REST API takes it")
        body = json.dumps({"instances": [row]})
        url = f"{server.url}/v1/models/{MODEL_NAME}:predict"
        command = ["curl", "-s", "-X", "POST", url, "-H", "Content-Type: application/json", "-d", body]
        print(f"  $ {shlex.join(command)}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if result.returncode != 0:
            raise StepFailed(f"curl exited {result.returncode}: {result.stderr.strip()}")
        print(f"    {result.stdout.strip()}", flush=True)
        answer = json.loads(result.stdout)
        if "predictions" not in answer:
            raise StepFailed(f"the server answered without predictions: {result.stdout.strip()}")
        prediction = answer["predictions"][0]
        prediction = prediction["prediction"] if isinstance(prediction, dict) else prediction
        print(f"  predicted {prediction:.1f} bikers for that hour; {truth:.0f} rode then", flush=True)
        print("  stopping the server", flush=True)


def main(argv: list[str]) -> None:
    del argv
    data_dir, model_dir = FLAGS.data_dir, FLAGS.model_dir or DEFAULT_MODEL_DIR
    gin_files = FLAGS.gin_file or [DEFAULT_CONFIG]
    os.makedirs(model_dir, exist_ok=True)
    quickstart = Quickstart(os.path.join(model_dir, "quickstart.log"))
    export_base = os.path.join(model_dir, "export")
    print("Quickstart: hourly bike rentals (Bikeshare, Washington D.C., 2011), wide & deep against gradient-boosted "
          f"trees.\nEvery command below can be run by hand; their full output goes to {quickstart.log_path}.")
    try:
        quickstart.header("Prepare the table: whole days held out for validation and test")
        if os.path.exists(os.path.join(data_dir, "metadata.json")):
            quickstart.kept(data_dir)
        else:
            quickstart.run("projects.wide_deep.prepare", "--gin_file=projects/wide_deep/configs/data_bikeshare.gin",
                           f"--output_dir={data_dir}", show=1)
        quickstart.header("The classical baseline: gradient-boosted trees (scikit-learn)")
        quickstart.run("projects.wide_deep.baseline", f"--data_dir={data_dir}", show=1)
        quickstart.header(f"Train wide & deep ({', '.join(gin_files)})")
        quickstart.run("projects.wide_deep.train", *(f"--gin_file={f}" for f in gin_files), f"--model_dir={model_dir}",
                       f"--seed={FLAGS.seed}", f"--gin_bindings=RegressionTask.data_dir='{data_dir}'",
                       *(f"--gin_bindings={b}" for b in FLAGS.gin_bindings), show=1)
        quickstart.header("Evaluate on the test days, beside the trees")
        quickstart.run("projects.wide_deep.evaluate", f"--model_dir={model_dir}", show=3)
        quickstart.header("Export a SavedModel that takes a row's raw values")
        if os.path.exists(os.path.join(export_base, "1", "saved_model.pb")):
            quickstart.kept(os.path.join(export_base, "1"))
        else:
            quickstart.run("projects.wide_deep.export", f"--model_dir={model_dir}", "--version=1", show=1)
        quickstart.header("Serve the export with the embedded model server")
        _serve_and_curl(quickstart, export_base, data_dir)
    except StepFailed as e:
        sys.exit(f"error: {e}")
    minutes = (time.monotonic() - quickstart.started) / 60
    files = [(f"{data_dir}/", "the prepared table (TFRecord shards, metadata.json, the trees' gbt_baseline.json)"),
             (f"{model_dir}/", "checkpoints, operative_config.gin, flags.txt, training_log.csv, TensorBoard logs"),
             (os.path.join(model_dir, "eval_test.json"), "the test scores"),
             (os.path.join(model_dir, "predicted_vs_true_test.png"), "the picture of the test predictions"),
             (os.path.join(export_base, "1") + "/", "the SavedModel the server loaded"),
             (quickstart.log_path, "every command's full output")]
    width = max(len(path) for path, _ in files)
    print(f"\nDone in {minutes:.1f} minutes. Where things are:")
    for path, what in files:
        print(f"  {path:<{width}}  {what}")
    print(f"Next: tensorboard --logdir={model_dir}  |  make demo-<project> for the other projects  |  make help")


if __name__ == "__main__":
    app.run(main)
