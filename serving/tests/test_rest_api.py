"""The embedded server's REST API against TF Serving's documented examples and error cases (in-process)."""

import json
import os
import shutil
import threading
import time

import numpy as np
import pytest

from serving import config, models, server

from . import toy_models


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    toy_models.half_plus_three(str(base / "saved_model_half_plus_three"))
    toy_models.tag_signal_sensor(str(base / "tss"))
    toy_models.bytes_echo(str(base / "echo"))
    toy_models.half_plus_three(str(base / "two_versions"), version=1, offset=3.0)
    toy_models.half_plus_three(str(base / "two_versions"), version=2, offset=100.0)
    two = config.single_model_config("two_versions", str(base / "two_versions"))
    two.model_version_policy.all.SetInParent()
    two.version_labels["stable"] = 1
    configs = [config.single_model_config(name, str(base / name)) for name in ("saved_model_half_plus_three", "tss",
                                                                               "echo")]
    registry = models.ModelRegistry(configs + [two], poll_seconds=0, settle_seconds=0)
    registry.start()
    return server.create_app(registry, max_request_bytes=200_000).test_client()


def _post(client, url, body):
    response = client.post(url, data=body if isinstance(body, str | bytes) else json.dumps(body))
    return response.status_code, response.get_json()


ROWS = {"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                      {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]}
COLUMNS = {"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                      "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}


def test_documented_status_and_predict_example(client):
    response = client.get("/v1/models/saved_model_half_plus_three")
    assert response.status_code == 200
    assert response.get_json() == {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert _post(client, "/v1/models/saved_model_half_plus_three:predict", '{"instances": [1.0,2.0,5.0]}') == \
        (200, {"predictions": [3.5, 4.0, 5.5]})
    assert _post(client, "/v1/models/saved_model_half_plus_three/versions/123:predict",
                 {"signature_name": "serving_default", "inputs": [3.0, 4.0]}) == (200, {"outputs": [4.5, 5.0]})


def test_documented_unknown_model_is_404(client):
    assert _post(client, "/v1/models/half:predict", '{"instances": [1.0,5.0]}') == \
        (404, {"error": "Servable not found for request: Latest(half)"})
    status, body = _post(client, "/v1/models/saved_model_half_plus_three/versions/50:predict", {"instances": [1.0]})
    assert status == 404 and "Specific(saved_model_half_plus_three, 50)" in body["error"]
    assert client.get("/v1/models/nope").status_code == 404


def test_row_and_columnar_formats_of_the_documented_multi_input_example_agree(client):
    status, rows = _post(client, "/v1/models/tss:predict", ROWS)
    assert status == 200
    assert rows["predictions"] == [{"tag_upper": "FOO", "signal_sum": 15, "sensor_sum": 10.0},
                                   {"tag_upper": "BAR", "signal_sum": 15, "sensor_sum": 23.0}]
    status, columns = _post(client, "/v1/models/tss:predict", COLUMNS)
    assert status == 200
    assert columns["outputs"] == {"tag_upper": ["FOO", "BAR"], "signal_sum": [15, 15], "sensor_sum": [10.0, 23.0]}


def test_b64_inputs_are_decoded_and_bytes_outputs_encoded(client):
    status, body = _post(client, "/v1/models/echo:predict", {"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ"}]})
    assert status == 200  # the second has no padding, which TF Serving accepts too
    assert body["predictions"] == [{"image_bytes": {"b64": "aGVsbG9oZWxsbw=="}, "length": 5},
                                   {"image_bytes": {"b64": "d29ybGR3b3JsZA=="}, "length": 5}]
    assert _post(client, "/v1/models/echo:predict", {"inputs": {"b64": "aGVsbG8="}})[0] == 400  # scalar, not [batch]
    status, body = _post(client, "/v1/models/echo:predict", {"instances": [{"b64": "a-_b"}]})
    assert status == 400 and "Unable to base64 decode" in body["error"]


def test_versions_and_labels_route_to_their_version(client):
    assert _post(client, "/v1/models/two_versions:predict", {"instances": [2.0]})[1] == {"predictions": [101.0]}
    assert _post(client, "/v1/models/two_versions/versions/1:predict", {"instances": [2.0]})[1]["predictions"] == [4.0]
    assert _post(client, "/v1/models/two_versions/labels/stable:predict", {"instances": [2.0]})[1]["predictions"] == \
        [4.0]
    status, body = _post(client, "/v1/models/two_versions/labels/nightly:predict", {"instances": [2.0]})
    assert (status, body) == (400, {"error": "Unrecognized servable version label: nightly"})
    versions = client.get("/v1/models/two_versions").get_json()["model_version_status"]
    assert [v["version"] for v in versions] == ["2", "1"] and {v["state"] for v in versions} == {"AVAILABLE"}
    assert client.get("/v1/models/two_versions/labels/stable").get_json()["model_version_status"][0]["version"] == "1"


def test_metadata_lists_signatures_as_tf_serving_does(client):
    response = client.get("/v1/models/tss/metadata")
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_spec"] == {"name": "tss", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    signal = signature["inputs"]["signal"]
    assert signal["dtype"] == "DT_INT32"
    assert [d["size"] for d in signal["tensor_shape"]["dim"]] == ["-1", "5"]
    assert set(signature["outputs"]) == {"tag_upper", "signal_sum", "sensor_sum"}


@pytest.mark.parametrize("body, status, message", [
    ("", 400, "JSON Parse error: The document is empty"),
    ("instances = [1, 2]", 400, "JSON Parse error"),
    ('{"instances": [1, 2', 400, "JSON Parse error"),
    ("[1, 2]", 400, "Is not object"),
    ({"instance": [1.0]}, 400, "Missing 'inputs' or 'instances' key"),
    ({"instances": [1.0], "inputs": [1.0]}, 400, "expecting only one of 'inputs' or 'instances'"),
    ({"instances": []}, 400, "No values in 'instances' array"),
    ({"instances": 1.0}, 400, "Expecting 'instances' to be an list/array"),
    ({"instances": ["x", "y"]}, 400, "not of expected type: float"),
    ({"instances": [[1.0], [2.0, 3.0]]}, 400, "ragged"),
    ({"instances": [[1.0], [2.0]]}, 400, "shape [2, 1] does not match the signature's [-1]"),
    ({"instances": [{"y": 1.0}]}, 400, "must be equal to: x"),
    ({"inputs": {"y": [1.0]}}, 400, "Missing named input: x"),
    ({"signature_name": 100, "instances": [1.0]}, 400, "'signature_name' key must be a string value."),
    ({"signature_name": False, "instances": [1.0]}, 400, "'signature_name' key must be a string value."),
    ("[" * 100_000, 400, "JSON Parse error"),
    ({"signature_name": "serving_bytes", "instances": [1.0]}, 400, 'Serving signature name: "serving_bytes" not'),
])
def test_bad_requests_get_a_json_error_with_the_right_status(client, body, status, message):
    got_status, got = _post(client, "/v1/models/saved_model_half_plus_three:predict", body)
    assert got_status == status and message in got["error"], got


@pytest.mark.parametrize("body, message", [
    ({"instances": [{"tag": "a", "signal": [1, 2, 3, 4], "sensor": [[1, 2], [3, 4]]}]}, "input 'signal': shape [1, 4]"),
    ({"instances": [{"tag": 3, "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]}]}, "expected type: string"),
    ({"instances": [{"tag": "a", "signal": [1, 2, 3, 4, 5.5], "sensor": [[1, 2], [3, 4]]}]}, "expected type: int32"),
    ({"instances": [{"tag": "a", "signal": [1, 2, 3, 4, 2**40], "sensor": [[1, 2], [3, 4]]}]}, "out of range"),
    ({"instances": [{"tag": {"b64": 5}, "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]}]}, "base64"),
    ({"instances": [{"tag": "a", "signal": {"b64": "aGVsbG8="}, "sensor": [[1, 2], [3, 4]]}]}, "Type: Object"),
    ({"instances": [1, 2]}, "each instance must be a JSON object"),
    ({"inputs": [1, 2]}, "'inputs' must be a JSON object"),
])
def test_multi_input_errors_name_the_input(client, body, message):
    status, got = _post(client, "/v1/models/tss:predict", body)
    assert status == 400 and message in got["error"], got


def test_urls_methods_and_sizes_outside_the_api(client):
    assert client.put("/v1/models/tss").status_code == 400
    assert client.post("/v1/models/tss:classify", data="{}").status_code == 501
    assert client.get("/v1/models/tss:predict").get_json()["error"] == "Malformed request: GET /v1/models/tss:predict"
    assert client.get("/v1/models/tss/versions/x").status_code == 400
    big = json.dumps({"instances": [1.0] * 50_000})
    status, body = _post(client, "/v1/models/saved_model_half_plus_three:predict", big)
    assert status == 413 and "--max_request_bytes" in body["error"]
    # ...and the server keeps serving.
    assert _post(client, "/v1/models/saved_model_half_plus_three:predict", {"instances": [1.0]})[0] == 200


def test_non_finite_floats_round_trip_as_tf_serving_writes_them(client):
    response = client.post("/v1/models/saved_model_half_plus_three:predict", data='{"instances": [NaN, Infinity]}')
    assert response.status_code == 200
    assert response.get_data(as_text=True) == '{"predictions":[NaN,Infinity]}'


def test_new_versions_are_loaded_once_settled_and_removed_ones_unloaded(tmp_path):
    base = str(tmp_path / "m")
    toy_models.half_plus_three(base, version=1, offset=1.0)
    model = models.Model(config.single_model_config("m", base), settle_seconds=0)
    model.poll(first=True)
    assert model.resolve().number == 1

    # A folder still being copied in: saved_model.pb is there, the variables are not yet.
    staging = str(tmp_path / "staging")
    complete = toy_models.half_plus_three(staging, version=2, offset=2.0)
    os.makedirs(os.path.join(base, "2"))
    shutil.copy(os.path.join(complete, "saved_model.pb"), os.path.join(base, "2"))
    for _ in range(3):
        model.poll()
    assert model.resolve().number == 1, "a half-written version was loaded"
    failed = model.status(version=2)["model_version_status"][0]
    assert failed["state"] == "END" and failed["status"]["error_code"] == "UNKNOWN"

    # The copy finishes: the next polls see new files, wait for them to settle, then load version 2.
    shutil.copytree(os.path.join(complete, "variables"), os.path.join(base, "2", "variables"))
    model.poll()
    assert model.resolve().number == 1  # changed since the last poll: not settled yet
    model.poll()
    assert model.resolve().number == 2
    assert model.resolve().run("serving_default", {"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]
    assert model.status(version=1)["model_version_status"][0]["state"] == "END"  # latest{1}: old one unloaded

    shutil.rmtree(os.path.join(base, "2"))  # rolled back: version 1 is the latest again
    model.poll()
    assert model.resolve().number == 1
    shutil.rmtree(os.path.join(base, "1"))
    model.poll()
    with pytest.raises(models.NotFound):
        model.resolve()


def test_a_version_written_moments_ago_waits_to_settle_even_at_startup(tmp_path):
    base = str(tmp_path / "m")
    toy_models.half_plus_three(base, version=1)
    model = models.Model(config.single_model_config("m", base), settle_seconds=0.5)
    model.poll(first=True)
    assert model.available() == []  # its files changed less than 0.5 s ago: not even tried
    with pytest.raises(models.NotFound):
        model.status()
    time.sleep(0.6)
    model.poll()
    assert model.available() == [1]


def test_a_version_that_fails_to_load_displaces_no_served_version_under_load(tmp_path):
    base = str(tmp_path / "m")
    toy_models.half_plus_three(base, version=1, offset=1.0)
    toy_models.half_plus_three(base, version=2, offset=2.0)
    latest_two = config.single_model_config("m", base)
    latest_two.model_version_policy.latest.num_versions = 2
    registry = models.ModelRegistry([latest_two], poll_seconds=0, settle_seconds=0)
    registry.start()
    app = server.create_app(registry)
    pinned = "/v1/models/m/versions/1:predict"
    assert _post(app.test_client(), pinned, {"instances": [2.0]}) == (200, {"predictions": [2.0]})

    answers, started, done = [], threading.Event(), threading.Event()

    def send():  # at most 2,000 requests; stops as soon as the polls below are over
        client = app.test_client()
        for _ in range(2000):
            answers.append(_post(client, pinned, {"instances": [2.0]}))
            started.set()
            if done.is_set():
                return

    sender = threading.Thread(target=send)
    sender.start()
    states = []
    try:
        assert started.wait(60)
        # Version 3 is a graph without its variables: it cannot load.
        os.makedirs(os.path.join(base, "3"))
        shutil.copy(os.path.join(base, "2", "saved_model.pb"), os.path.join(base, "3"))
        for _ in range(4):  # the first poll sees version 3, the second tries it, the rest must leave it alone
            registry.poll()
            states.append(registry.models["m"].available())
            states.append(_post(app.test_client(), pinned, {"instances": [2.0]})[0])
    finally:
        done.set()
        sender.join()
    assert states == [[1, 2], 200] * 4
    assert answers and all(answer == (200, {"predictions": [2.0]}) for answer in answers), \
        [answer for answer in answers if answer[0] != 200][:3]
    status = {v["version"]: v for v in app.test_client().get("/v1/models/m").get_json()["model_version_status"]}
    assert {version: v["state"] for version, v in status.items()} == {"3": "END", "2": "AVAILABLE", "1": "AVAILABLE"}
    assert status["3"]["status"]["error_code"] == "UNKNOWN"
    assert "Failed to load" in status["3"]["status"]["error_message"]

    # A good version 3 replaces the bad one: the policy loads it, then unloads version 1.
    shutil.rmtree(os.path.join(base, "3"))
    toy_models.half_plus_three(str(tmp_path / "staging"), version=3, offset=3.0)
    os.rename(str(tmp_path / "staging" / "3"), os.path.join(base, "3"))
    registry.poll()
    registry.poll()
    assert registry.models["m"].available() == [2, 3]
    assert _post(app.test_client(), "/v1/models/m:predict", {"instances": [2.0]}) == (200, {"predictions": [4.0]})
    assert _post(app.test_client(), pinned, {"instances": [2.0]})[0] == 404

    # A deleted folder leaves the status.
    shutil.rmtree(os.path.join(base, "1"))
    registry.poll()
    versions = app.test_client().get("/v1/models/m").get_json()["model_version_status"]
    assert [(v["version"], v["state"]) for v in versions] == [("3", "AVAILABLE"), ("2", "AVAILABLE")]


def test_malformed_json_is_a_400_with_the_parsers_message_as_tf_serving_answers(client):
    bad = '{"instances": [1.0, 2.0'
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(bad)
    for headers in ({}, {"Content-Type": "application/json"}):  # TF Serving reads the body whatever its label
        response = client.post("/v1/models/saved_model_half_plus_three:predict", data=bad, headers=headers)
        assert (response.status_code, response.mimetype) == (400, "application/json")
        assert response.get_json() == {"error": f"JSON Parse error: {parsed.value}"}


def test_the_event_loop_path_answers_as_the_wsgi_path_with_and_without_batching(tmp_path):
    """The binary serves RestApi.respond_async (parse on the loop, the model in a pool or the batcher); the tests
    above drive respond. Both must give the same status and bytes for every request, good or bad, when many
    arrive at once."""
    import asyncio
    import concurrent.futures

    from serving import batching

    toy_models.half_plus_three(str(tmp_path / "half"))
    toy_models.tag_signal_sensor(str(tmp_path / "tss"))
    registry = models.ModelRegistry([config.single_model_config(n, str(tmp_path / n)) for n in ("half", "tss")],
                                    poll_seconds=0, settle_seconds=0)
    registry.start()
    requests_ = [("POST", "/v1/models/half:predict", json.dumps({"instances": [float(i), 2.0]}).encode())
                 for i in range(12)]
    requests_ += [("POST", "/v1/models/half:predict", b'{"inputs": [1.0, 5.0]}'),
                  ("POST", "/v1/models/half:predict", b'{"instances": [NaN]}'),
                  ("POST", "/v1/models/half:predict", b'{"instances": ["x"]}'),
                  ("POST", "/v1/models/half/versions/9:predict", b'{"instances": [1.0]}'),
                  ("POST", "/v1/models/tss:predict", json.dumps(ROWS).encode()),
                  ("POST", "/v1/models/tss:predict", json.dumps(COLUMNS).encode()),
                  ("GET", "/v1/models/half", b""), ("GET", "/v1/models/tss/metadata", b""),
                  ("PUT", "/v1/models/half", b""), ("GET", "/elsewhere", b""),
                  ("POST", "/v1/models/tss:predict", json.dumps({"instances": [  # over 64 KB: parsed in the pool
                      {"tag": "x" * 70_000, "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]}]}).encode())]
    pool = concurrent.futures.ThreadPoolExecutor(4)
    for batcher in (None, batching.Batcher()):
        api = server.RestApi(registry, batcher=batcher)
        expected = [api.respond(*request) for request in requests_]

        async def all_at_once(api=api):
            return await asyncio.gather(*(api.respond_async(*request, pool) for request in requests_))

        assert asyncio.run(all_at_once()) == expected
        assert [status for status, _ in expected] == [200] * 14 + [400, 404, 200, 200, 200, 200, 400, 404, 200]
        if batcher is not None:
            batcher.stop()


def test_response_bytes_are_pinned_whichever_encoder_writes_them():
    import numpy as np

    from serving import rest

    floats = np.array([0.1, 1 / 3, 1e-7], np.float32)
    assert rest.dumps(rest.response({"y": floats}, True, 3)) == b'{"predictions":[0.1,0.33333334,1e-7]}'
    assert rest.dumps(rest.response({"y": np.array([np.nan, 0.1], np.float32)}, True, 2)) == \
        b'{"predictions":[NaN,0.1]}'
    text = np.array([b"null \xc3\xbcber"], object)  # "null" in a text does not change how anything is written
    assert rest.dumps(rest.response({"t": text, "h": np.array([0.1], np.float16)}, True, 1)) == \
        '{"predictions":[{"h":0.1,"t":"null über"}]}'.encode()


def test_the_asgi_app_reads_refuses_and_answers_as_the_server_binary_does(tmp_path):
    import asyncio

    toy_models.half_plus_three(str(tmp_path / "half"))
    registry = models.ModelRegistry([config.single_model_config("half", str(tmp_path / "half"))], poll_seconds=0,
                                    settle_seconds=0)
    registry.start()
    api = server.RestApi(registry, max_request_bytes=100)
    app = server.AsgiApp(api, threads=2)

    def call(path, chunks, length=None, disconnect=False):
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
        if disconnect:
            messages = messages[:-1] + [{"type": "http.disconnect"}]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        headers = [(b"content-length", str(length).encode())] if length is not None else []
        asyncio.run(app({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send))
        return sent

    body = b'{"instances": [1.0, 2.0]}'
    sent = call("/v1/models/half:predict", [body[:10], body[10:]], length=len(body))
    assert sent[0]["status"] == 200 and dict(sent[0]["headers"]) == {
        b"content-type": b"application/json", b"content-length": str(len(sent[1]["body"])).encode()}
    assert sent[1]["body"] == api.respond("POST", "/v1/models/half:predict", body)[1] == b'{"predictions":[3.5,4.0]}'
    refused = call("/v1/models/half:predict", [b"{}"], length=10_000)  # refused by its declared size, unread
    assert refused[0]["status"] == 413 and b"--max_request_bytes" in refused[1]["body"]
    big = call("/v1/models/half:predict", [b"[" * 60, b"[" * 60])  # no declared size: stops reading past the limit
    assert big[0]["status"] == 413
    assert call("/v1/models/half:predict", [body[:10], body[10:]], disconnect=True) == []  # nobody to answer
    app.pool.shutdown()
