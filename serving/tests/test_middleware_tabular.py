"""Tabular models end to end: a Bikeshare-shaped toy export on the embedded server (a real process), called
directly with TF Serving's row format and through the middleware (in-process) with JSON column values; also
the middleware's JSON parsing and its /healthz against that server."""

import io
import json
import time

import pytest
import requests
from PIL import Image

from serving import middleware, processes

from . import toy_models

ROW = {"temp": 0.25, "hr": 8, "mnth": "Mar"}
# casual = 10 * temp + hr, registered = 100 * month, prediction = casual + registered (toy_models.bike_rentals)
ANSWER = {"casual": 10.5, "prediction": 310.5, "registered": 300.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabular")
    toy_models.bike_rentals(str(root / "bikes"))
    toy_models.bike_rentals(str(root / "bikes_total"), single_output=True)
    toy_models.classify_text(str(root / "text"))
    config = root / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}\n'
        for name in ("bikes", "bikes_total", "text")) + "}\n")
    with processes.start_server(f"--model_config_file={config}", "--file_system_poll_wait_seconds=0.2") as child:
        deadline = time.monotonic() + 60
        while not all(requests.get(f"{child.url}/v1/models/{name}", timeout=10).status_code == 200
                      for name in ("bikes", "bikes_total", "text")):  # versions load once their files settle
            assert time.monotonic() < deadline, child.log()[-2000:]
            time.sleep(0.2)
        yield child


@pytest.fixture(scope="module")
def client(server):
    return middleware.create_app(middleware.Upstream(server.url, timeout=30.0)).test_client()


def _post(client, url, body):
    response = client.post(url, data=json.dumps(body), content_type="application/json")
    return response.status_code, response.get_json()


def test_embedded_server_serves_the_tabular_contract_as_tf_serving_does(server):
    metadata = requests.get(f"{server.url}/v1/models/bikes/metadata", timeout=30).json()
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert {name: spec["dtype"] for name, spec in inputs.items()} == \
        {"temp": "DT_FLOAT", "hr": "DT_INT64", "mnth": "DT_STRING"}
    rows = requests.post(f"{server.url}/v1/models/bikes:predict", timeout=30,
                         json={"instances": [ROW, {"temp": 0.5, "hr": 23, "mnth": "12"}]})
    assert rows.status_code == 200, rows.text
    assert rows.json() == {"predictions": [ANSWER, {"casual": 28.0, "prediction": 1228.0, "registered": 1200.0}]}
    columns = requests.post(f"{server.url}/v1/models/bikes_total:predict", timeout=30,
                            json={"inputs": {"temp": [0.25, 0.0], "hr": [8, 0], "mnth": ["Mar", "nope"]}})
    assert columns.json() == {"outputs": [310.5, 0.0]}


def test_one_row_of_column_values_gets_every_output_by_name(client):
    assert _post(client, "/v1/predict/bikes", ROW) == \
        (200, {"model": "bikes", "signature_name": "serving_default", "predictions": [ANSWER]})


def test_a_batch_of_rows_gets_one_answer_per_row_in_order(client):
    rows = [ROW, {"temp": 0.5, "hr": 23, "mnth": "Dec"}, {"temp": 0.0, "hr": 0, "mnth": "Jan"}]
    status, body = _post(client, "/v1/predict/bikes", {"rows": rows})
    assert status == 200, body
    assert [p["prediction"] for p in body["predictions"]] == [310.5, 1228.0, 100.0]
    assert [p["registered"] for p in body["predictions"]] == [300.0, 1200.0, 100.0]


def test_a_lone_output_keeps_its_name(client):
    assert _post(client, "/v1/predict/bikes_total", {"rows": [ROW, ROW]})[1]["predictions"] == \
        [{"prediction": 310.5}, {"prediction": 310.5}]


def test_the_signature_is_the_one_taking_exactly_these_columns(client):
    status, body = _post(client, "/v1/predict/bikes", {"temp": 0.25, "hr": 8})
    assert (status, body["signature_name"], body["predictions"]) == (200, "no_month", [{"prediction": 10.5}])


@pytest.mark.parametrize("row, prediction", [
    ({"temp": "0.25", "hr": "8", "mnth": "Mar"}, 310.5),   # numeric strings for float and int64 columns
    ({"temp": 1, "hr": 8.0, "mnth": "Aug"}, 818.0),        # an int for a float, an integral float for an int
    ({"temp": 1, "hr": 8, "mnth": " Aug"}, 18.0),          # strings go as they are: " Aug" is no month
    ({"temp": 0.25, "hr": " +8 ", "mnth": 8}, 810.5),      # a number for a string column is sent as "8"
    ({"temp": 0.25, "hr": 8, "mnth": 8.0}, 10.5),          # ...as JSON writes it: "8.0", not a month
])
def test_values_are_converted_to_the_columns_dtypes(client, row, prediction):
    status, body = _post(client, "/v1/predict/bikes", row)
    assert status == 200, body
    assert body["predictions"][0]["prediction"] == prediction


@pytest.mark.parametrize("body, message", [
    ({"temp": 0.25, "mnth": "Mar"},
     'the closest, "serving_default", has missing columns [\'hr\']. It expects: hr (int64), mnth (string), '
     "temp (float)."),
    ({"temp": 0.25, "hr": 8, "mnth": "Mar", "season": 1},
     "the closest, \"serving_default\", has unknown columns ['season']. It expects: hr (int64), mnth"),
    ({"temp": 0.25, "hour": 8, "mnth": "Mar"},
     "\"serving_default\", has missing columns ['hr']; unknown columns ['hour']."),
    ({"temp": 0.25, "hr": "eight", "mnth": "Mar"},
     "column 'hr': got \"eight\"; expected a whole number in [-9223372036854775808, 9223372036854775807] or a "
     "string of digits (int64)."),
    ({"temp": 0.25, "hr": 8.5, "mnth": "Mar"}, "column 'hr': got 8.5; expected a whole number"),
    ({"temp": 0.25, "hr": 2**63, "mnth": "Mar"}, "column 'hr': got 9223372036854775808; expected a whole number"),
    ({"temp": 0.25, "hr": True, "mnth": "Mar"}, "column 'hr': got true; expected a whole number"),
    ({"temp": "warm", "hr": 8, "mnth": "Mar"},
     "column 'temp': got \"warm\"; expected a number or a numeric string (float)."),
    ({"temp": None, "hr": 8, "mnth": "Mar"}, "column 'temp': got null;"),
    ({"temp": "nan", "hr": 8, "mnth": "Mar"}, "column 'temp': got \"nan\"; expected a number"),  # JSON has no nan
    ({"temp": "1e999", "hr": 8, "mnth": "Mar"}, "column 'temp': got \"1e999\"; expected a number"),
    ({"temp": 0.25, "hr": 8, "mnth": ["Mar"]}, "column 'mnth': got [\"Mar\"]; expected a string, number or boolean "
                                                "(string)."),
    ({"rows": [ROW, {"temp": 0.5, "hr": 8, "mnth": {"name": "Apr"}}]}, "row 1, column 'mnth': got {\"name\": "),
    ({"rows": [ROW, {"temp": 0.5, "hr": "x", "mnth": "Apr"}]}, "row 1, column 'hr': got \"x\"; expected a whole"),
    ({"rows": [ROW, {"temp": 0.5, "hour": 8, "mnth": "Apr"}]},
     "every row needs the same columns: \"rows\"[1] lacks ['hr'] and adds ['hour'] compared with \"rows\"[0]."),
    ({"rows": [ROW, {"temp": 0.5, "mnth": "Apr"}]}, "\"rows\"[1] lacks ['hr'] and adds []"),
    ({"rows": []}, '"rows" must be a non-empty list of objects of column values, got [].'),
    ({"rows": ROW}, '"rows" must be a non-empty list of objects'),
    ({"rows": [ROW, 5]}, '"rows"[1] must be an object of column values, got 5.'),
    ({}, "an empty JSON object"),
])
def test_rows_the_model_cannot_take_are_a_400_naming_column_and_row(client, body, message):
    status, got = _post(client, "/v1/predict/bikes", body)
    assert status == 400 and message in got["error"], got


def test_classify_and_predict_are_the_same_route_for_every_kind_of_model(client):
    assert _post(client, "/v1/classify/bikes", ROW) == _post(client, "/v1/predict/bikes", ROW)
    for route in ("classify", "predict"):
        status, body = _post(client, f"/v1/{route}/text?top_k=1", {"texts": ["too short", "a b c d e"]})
        assert status == 200 and [p["label"] for p in body["predictions"]] == ["short", "long"], body
    status, body = _post(client, "/v1/predict/text", {"words": "a b c"})  # a text model takes no such column
    assert status == 400 and "has missing columns ['text']; unknown columns ['words']" in body["error"]
    assert _post(client, "/v1/predict/nope", ROW)[0] == 404
    usage = client.get("/").get_json()["usage"]
    assert any(key.startswith("POST /v1/predict/<model>") and "{rows: [" in text for key, text in usage.items())


def test_version_and_label_parameters_reach_the_tabular_model(client):
    assert _post(client, "/v1/predict/bikes?version=1", ROW)[1]["predictions"] == [ANSWER]
    status, body = _post(client, "/v1/predict/bikes?version=7", ROW)
    assert status == 404 and "Specific(bikes, 7)" in body["error"]


def test_healthz_reports_the_upstreams_state(server):
    def healthz(url, **kwargs):
        app = middleware.create_app(middleware.Upstream(url, timeout=30.0), **kwargs)
        response = app.test_client().get("/healthz")
        return response.status_code, response.get_json()

    for kwargs in ({}, {"health_models": ["bikes"]}):  # nothing listens on port 9
        status, body = healthz("http://127.0.0.1:9", **kwargs)
        assert (status, body["upstream"]) == (503, "http://127.0.0.1:9") and "unreachable" in body["error"], body
    assert healthz(server.url) == (200, {"status": "ok", "upstream": server.url, "models": {}})
    assert healthz(server.url, health_models=["bikes", "text"]) == (200, {
        "status": "ok", "upstream": server.url, "models": {"bikes": {"1": "AVAILABLE"}, "text": {"1": "AVAILABLE"}}})
    status, body = healthz(server.url, health_models=["bikes", "nope"])
    assert (status, body["status"], body["upstream"]) == (503, "unavailable", server.url)
    assert body["error"] == "model 'nope': model server: Servable not found for request: Latest(nope)"


def test_malformed_json_is_a_400_with_the_parsers_message(client):
    bad = '{"temp": 0.25, "hr": 8'
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(bad)
    # As JSON, and as `curl -d` sends it (labelled a form), which also reads well-formed JSON.
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        response = client.post("/v1/predict/bikes", data=bad, content_type=content_type)
        assert (response.status_code, response.get_json()) == (400, {"error": f"invalid JSON: {parsed.value}"})
        response = client.post("/v1/predict/bikes", data=json.dumps(ROW), content_type=content_type)
        assert (response.status_code, response.get_json()["predictions"]) == (200, [ANSWER])
    response = client.post("/v1/predict/bikes", data="[" * 100_000, content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"error": "invalid JSON: nested too deeply"})
    response = client.post("/v1/predict/bikes", data="temp=0.25", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.get_json()["error"].startswith("expected a multipart upload")


def test_images_go_upstream_as_they_are_unless_exif_turns_them(tmp_path):
    png = io.BytesIO()
    Image.new("L", (3, 2), 7).save(png, format="PNG")
    assert middleware.prepare_image(png.getvalue(), "x") == png.getvalue()  # not decoded and encoded again
    turned = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    Image.new("RGB", (3, 2), (1, 2, 3)).save(turned, format="JPEG", exif=exif)
    upright = Image.open(io.BytesIO(middleware.prepare_image(turned.getvalue(), "x")))
    assert (upright.format, upright.size) == ("PNG", (2, 3))


def test_uploads_read_as_werkzeug_reads_them_in_the_bodys_order_and_a_broken_body_is_a_400():
    import flask
    import urllib3

    app = flask.Flask(__name__)
    fields = [("b", ("2.png", b"two\r\n--not-a-boundary")), ("a", ("1.png", b"\x00one")), ("note", "hi"),
              ("b", ("3.png", b""))]
    body, content_type = urllib3.encode_multipart_formdata(fields)
    with app.test_request_context(method="POST", data=body, content_type=content_type):
        werkzeug = [(f.filename, f.read()) for key in flask.request.files for f in flask.request.files.getlist(key)]
    with app.test_request_context(method="POST", data=body, content_type=content_type):
        ours = middleware.read_uploads(flask.request)
    assert sorted(ours) == sorted(werkzeug) and len(ours) == 3  # the same files; "note" is a field, not a file
    assert [name for name, _ in ours] == ["2.png", "1.png", "3.png"]
    with app.test_request_context(method="POST", data=b"garbage", content_type="multipart/form-data; boundary=xyz"):
        with pytest.raises(middleware.ClientError) as error:
            middleware.read_uploads(flask.request)
    assert error.value.status == 400
