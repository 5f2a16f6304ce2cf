"""End to end on real processes: a cnn_vision export behind the embedded server and the middleware,
called with the curl script, the requests client and the middleware, checked against the SavedModel."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import requests
import tensorflow as tf
from PIL import Image

from projects.cnn_vision.tests import helpers as cnn_helpers
from serving import loadtest, processes

from . import toy_models

CLIENTS = os.path.join(processes.REPO, "serving", "clients")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A smoke-trained cnn_vision export (version 1), two test images as PNG, and a toy text model."""
    root = tmp_path_factory.mktemp("serving")
    cnn_helpers.write_fashion_subset(str(root / "raw"), train=300, test=50)
    data_dir, model_dir = str(root / "data"), str(root / "run")
    steps = [("prepare", f"--source_dir={root / 'raw'}", f"--output_dir={data_dir}", "--validation_size=50"),
             ("train", f"--gin_file={cnn_helpers.CONFIGS}/smoke.gin", f"--model_dir={model_dir}",
              f"--gin_bindings=ImageClassificationTask.data_dir='{data_dir}'"),
             ("export", f"--model_dir={model_dir}", f"--export_dir={root / 'models' / 'cnn_vision'}"),
             ("samples", f"--data_dir={data_dir}", f"--output_dir={root / 'samples'}", "--count=2")]
    for binary, *args in steps:
        result = cnn_helpers.run_module(binary, *args)
        assert result.returncode == 0, f"{binary}: {result.stderr[-3000:]}"
    toy_models.classify_text(str(root / "models" / "text"))
    toy_models.match_pairs(str(root / "models" / "pairs"))
    config = root / "models.config"
    config.write_text(textwrap.dedent(f"""\
        model_config_list {{
          config {{ name: "cnn_vision" base_path: "{root / 'models' / 'cnn_vision'}" model_platform: "tensorflow" }}
          config {{ name: "text" base_path: "{root / 'models' / 'text'}" model_platform: "tensorflow" }}
          config {{ name: "pairs" base_path: "{root / 'models' / 'pairs'}" model_platform: "tensorflow" }}
        }}"""))
    images = sorted(str(p) for p in (root / "samples").iterdir())
    return {"root": root, "config": str(config), "base": str(root / "models" / "cnn_vision"), "images": images}


@pytest.fixture(scope="module")
def server(exports):
    with processes.start_server(f"--model_config_file={exports['config']}", "--file_system_poll_wait_seconds=0.3",
                                "--max_request_bytes=1000000") as child:
        yield child


@pytest.fixture(scope="module")
def middleware(server):
    with processes.start_middleware(server.url) as child:
        yield child


def _saved_model_outputs(export_dir, image_path):
    """What the exported model itself answers for one image file."""
    signature = tf.saved_model.load(export_dir).signatures["serving_bytes"]
    outputs = signature(image_bytes=tf.constant([open(image_path, "rb").read()]))
    return {k: v.numpy()[0] for k, v in outputs.items()}


def _run(*command):
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=processes.REPO)


def test_all_three_clients_agree_with_the_saved_model(exports, server, middleware):
    image = exports["images"][0]
    expected = _saved_model_outputs(os.path.join(exports["base"], "1"), image)
    top = expected["class_names"].decode()
    model_url = f"{server.url}/v1/models/cnn_vision"

    curl = _run(os.path.join(CLIENTS, "predict.sh"), model_url, image)
    assert curl.returncode == 0, curl.stderr
    prediction = json.loads(curl.stdout)["predictions"][0]
    np.testing.assert_allclose(prediction["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6)
    assert prediction["class_names"] == top and prediction["class_ids"] == expected["class_ids"]
    assert prediction["label_names"] == [n.decode() for n in expected["label_names"]]

    python = _run(sys.executable, os.path.join(CLIENTS, "predict.py"), model_url, "--image", image)
    assert python.returncode == 0, python.stderr
    assert python.stdout.split(": ", 1)[1].startswith(f"{top} {expected['probabilities'].max():.3f}")

    classify_url = f"{middleware.url}/v1/classify/cnn_vision"
    for command in ([os.path.join(CLIENTS, "predict.sh"), classify_url, image],
                    [sys.executable, os.path.join(CLIENTS, "predict.py"), classify_url, "--image", image, "--json"]):
        through = _run(*command)
        assert through.returncode == 0, through.stderr
        answer = json.loads(through.stdout)["predictions"][0]
        assert answer["label"] == top
        assert answer["score"] == pytest.approx(float(expected["probabilities"].max()), abs=1e-5)
        assert [p["score"] for p in answer["top_k"]] == sorted([p["score"] for p in answer["top_k"]], reverse=True)


def test_curl_script_works_with_bsd_base64(exports, server, tmp_path):
    """macOS' and BSD's base64 have no -w option and do not wrap lines: the script must not rely on GNU's."""
    shim = tmp_path / "base64"
    shim.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import base64, sys
        if len(sys.argv) > 1:
            sys.exit(f"base64: illegal option -- {{sys.argv[1]}}")
        sys.stdout.write(base64.b64encode(sys.stdin.buffer.read()).decode())
        """))
    shim.chmod(0o755)
    image = exports["images"][1]
    expected = _saved_model_outputs(os.path.join(exports["base"], "1"), image)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    curl = subprocess.run([os.path.join(CLIENTS, "predict.sh"), f"{server.url}/v1/models/cnn_vision", image],
                          capture_output=True, text=True, timeout=120, cwd=processes.REPO, env=env)
    assert curl.returncode == 0, curl.stderr
    prediction = json.loads(curl.stdout)["predictions"][0]
    np.testing.assert_allclose(prediction["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6)


def test_middleware_takes_base64_other_formats_and_text(exports, middleware):
    image = exports["images"][1]
    top = _saved_model_outputs(os.path.join(exports["base"], "1"), image)["class_names"].decode()
    png = open(image, "rb").read()
    webp = io.BytesIO()
    Image.open(image).save(webp, format="WEBP", lossless=True)  # not decodable in the graph: re-encoded as PNG
    url = f"{middleware.url}/v1/classify/cnn_vision"
    for request in ({"json": {"image": base64.b64encode(png).decode()}},
                    {"json": {"images": ["data:image/png;base64," + base64.urlsafe_b64encode(png).decode()]}},
                    {"data": webp.getvalue(), "headers": {"Content-Type": "image/webp"}}):
        response = requests.post(url, timeout=30, **request)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["label"] == top

    response = requests.post(f"{middleware.url}/v1/classify/text?top_k=1", json={"texts": ["too short", "a b c d e"]},
                             timeout=30)
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == ["short", "long"]
    assert len(response.json()["predictions"][0]["top_k"]) == 1
    curl = _run(os.path.join(CLIENTS, "predict.sh"), f"{middleware.url}/v1/classify/text", "--text", "one two three 4")
    assert curl.returncode == 0 and json.loads(curl.stdout)["predictions"][0]["label"] == "long"


def test_middleware_scores_sentence_pairs_under_either_pair_of_names(middleware):
    url = f"{middleware.url}/v1/classify/pairs"
    one = requests.post(url, json={"text_a": "jesus wept", "text_b": "jesus cried"}, timeout=30)
    assert one.status_code == 200, one.text
    assert one.json()["predictions"] == [{"probability": 0.5, "score": 0.5}]
    both = requests.post(url, json={"q1": ["a b", "a b c d"], "q2": ["b a", "d"]}, timeout=30)
    assert both.status_code == 200, both.text
    assert [p["probability"] for p in both.json()["predictions"]] == [1.0, 0.25]
    for body, message in (({"text_a": "x"}, 'is {"text_a": ..., "text_b": ...} and nothing else'),
                          ({"q1": ["a", "b"], "q2": ["c"]}, "lists of strings of the same length"),
                          ({"text": "a"}, "takes no text")):
        response = requests.post(url, json=body, timeout=30)
        assert response.status_code == 400 and message in response.json()["error"], response.text
    wrong_model = requests.post(f"{middleware.url}/v1/classify/text", json={"text_a": "a", "text_b": "b"}, timeout=30)
    assert wrong_model.status_code == 400 and "takes no pair" in wrong_model.json()["error"]


def test_bad_input_gets_clear_errors_and_the_servers_keep_serving(exports, server, middleware):
    predict = f"{server.url}/v1/models/cnn_vision:predict"
    truncated = open(exports["images"][0], "rb").read()[:-40]  # a PNG cut short: Pillow fails in load()
    cases = [
        (predict, {"data": b'{"instances": [1, 2'}, 400, "JSON Parse error"),
        (predict, {"json": {"instances": [[[[0]] * 28] * 27]}}, 400, "shape [1, 27, 28, 1]"),
        (predict, {"json": {"instances": [[[[300]] * 28] * 28]}}, 400, "out of range for uint8"),
        (predict, {"json": {"signature_name": "serving_bytes", "instances": [{"b64": "bm90IGFuIGltYWdl"}]}}, 400,
         "image file format"),
        (predict, {"data": b" " * 1_000_001}, 413, "--max_request_bytes"),
        (predict, {"data": b" " * 3_000_000}, 413, "--max_request_bytes"),
        (predict, {"data": b"[" * 100_000}, 400, "JSON Parse error"),
        (f"{server.url}/v1/models/cnn_vision/versions/9:predict", {"json": {"instances": []}}, 404, "Specific"),
        (f"{server.url}/v1/models/resnet:predict", {"json": {"instances": []}}, 404, "Latest(resnet)"),
        (f"{middleware.url}/v1/classify/cnn_vision", {"files": {"image": ("x.png", b"not an image")}}, 400,
         "not a readable image"),
        (f"{middleware.url}/v1/classify/cnn_vision", {"json": {"text": "shoe"}}, 400, "takes no text"),
        (f"{middleware.url}/v1/classify/cnn_vision", {"json": {"picture": "x"}}, 400,  # read as a row of columns
         "has missing columns ['images']; unknown columns ['picture']"),
        (f"{middleware.url}/v1/classify/nope", {"json": {"text": "x"}}, 404, "Latest(nope)"),
        (f"{middleware.url}/v1/classify/nope%3Fx", {"json": {"text": "x"}}, 404, "Latest(nope?x)"),
        (f"{middleware.url}/v1/classify/cnn_vision?top_k=0", {"json": {"text": "x"}}, 400, "top_k"),
        (f"{middleware.url}/v1/classify/cnn_vision", {"files": {"image": ("x.png", truncated)}}, 400,
         "not a readable image"),
    ]
    for url, request, status, message in cases:
        response = requests.post(url, timeout=30, **request)
        assert response.status_code == status, (url, request.keys(), response.text)
        assert message in response.json()["error"], response.text
    with processes.start_middleware("http://127.0.0.1:9") as orphan:  # nothing listens on port 9
        response = requests.post(f"{orphan.url}/v1/classify/cnn_vision", json={"text": "x"}, timeout=30)
        assert response.status_code == 502 and "unreachable" in response.json()["error"]
    ok = requests.post(f"{middleware.url}/v1/classify/cnn_vision", files={"image": open(exports["images"][0], "rb")},
                       timeout=30)
    assert ok.status_code == 200 and server.process.poll() is None


def test_concurrent_load_has_no_failures(exports, server, middleware):
    png = open(exports["images"][0], "rb").read()
    body = json.dumps({"signature_name": "serving_bytes", "instances": [{"b64": base64.b64encode(png).decode()}]})
    direct = loadtest.run_load(lambda s: s.post(f"{server.url}/v1/models/cnn_vision:predict", data=body, timeout=30),
                               clients=8, seconds=4)
    through = loadtest.run_load(lambda s: s.post(f"{middleware.url}/v1/classify/cnn_vision",
                                                 files={"image": ("a.png", png)}, timeout=30), clients=8, seconds=4)
    for result in (direct, through):
        assert result["failures"] == 0, result["failure_examples"]
        assert result["requests"] > 8


def test_bench_measures_every_row_and_writes_them_as_json(exports, tmp_path):
    out = tmp_path / "rows.json"
    result = _run(sys.executable, "-m", "serving.bench", f"--export_dir={exports['base']}/1",
                  f"--image={exports['images'][0]}", f"--text_export_dir={exports['root'] / 'models' / 'text'}/1",
                  "--seconds=0.3", "--clients=1,3", f"--json={out}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert all(set(row) == {"row", "model", "clients", "requests_per_s", "p50_ms", "p99_ms", "failed"} for row in rows)
    got = {(row["model"], row["row"], row["clients"]) for row in rows}
    for clients in (1, 3):
        for model, label in [("cnn_vision", "baseline"), ("cnn_vision", "in-process pixels"),
                             ("cnn_vision", "in-process b64"), ("cnn_vision", "server pixels JSON"),
                             ("cnn_vision", "server b64 PNG"), ("cnn_vision", "server + batching b64 PNG"),
                             ("cnn_vision", "middleware PNG upload -> server + batching"),
                             ("word2vec_lstm", "in-process"), ("word2vec_lstm", "server text JSON")]:
            assert (model, label, clients) in got, (model, label, clients)
    assert all(row["failed"] == 0 and row["requests_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] for row in rows)
    assert "What HTTP costs one client" in result.stdout and "parse JSON" in result.stdout


def test_startup_mistakes_exit_with_the_flag_named(tmp_path):
    for args, message in ((["--model_base_path=" + str(tmp_path / "nope")], "is not a folder"),
                          (["--model_base_path=" + str(tmp_path), "--batching_parameters_file=x"],
                           "without --enable_batching")):
        result = _run(sys.executable, "-m", "serving.server", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]


def test_a_port_in_use_fails_before_any_model_loads(tmp_path):
    toy_models.half_plus_three(str(tmp_path / "m"), version=1)
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]
        result = _run(sys.executable, "-m", "serving.server", f"--model_base_path={tmp_path / 'm'}",
                      f"--rest_api_port={port}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and errors == [f"error: cannot listen on 127.0.0.1:{port} (--host, --rest_api_port): "
                                                 "Address already in use"], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Serving default version" not in result.stdout + result.stderr  # what a loaded version prints


def _status(server, version=None):
    url = f"{server.url}/v1/models/cnn_vision" + (f"/versions/{version}" if version else "")
    response = requests.get(url, timeout=30)
    return response.json()["model_version_status"] if response.status_code == 200 else []


def _wait(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_new_versions_are_picked_up_and_half_written_ones_never_loaded(exports, server):
    base = exports["base"]
    # What `export` does: write beside the base path, then rename into place.
    shutil.copytree(os.path.join(base, "1"), os.path.join(base, ".tmp-2"))
    os.rename(os.path.join(base, ".tmp-2"), os.path.join(base, "2"))
    assert _wait(lambda: [s["version"] for s in _status(server) if s["state"] == "AVAILABLE"] == ["2"]), \
        server.log()[-2000:]

    # A copy that stopped halfway: the graph is there, the variables are not.
    os.makedirs(os.path.join(base, "3"))
    shutil.copy(os.path.join(base, "1", "saved_model.pb"), os.path.join(base, "3"))
    assert _wait(lambda: _status(server, 3) and _status(server, 3)[0]["state"] == "END")
    assert "Failed to load" in _status(server, 3)[0]["status"]["error_message"]
    response = requests.post(f"{server.url}/v1/models/cnn_vision:predict", timeout=30,
                             json={"instances": [np.zeros((28, 28, 1), int).tolist()]})
    assert response.status_code == 200
    assert [s["version"] for s in _status(server) if s["state"] == "AVAILABLE"] == ["2"]
    shutil.rmtree(os.path.join(base, "3"))
