"""`make quickstart`: the real Bikeshare table prepared, the trees fitted, a (smoke-length) run trained,
evaluated, exported, served and asked once with curl; run again, it keeps what is done; a failing step
names itself and the log."""

import json
import os
import re
import shlex

import numpy as np
import tensorflow as tf

from .. import data
from . import helpers

SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"


def test_quickstart_serves_the_model_it_trained_and_keeps_its_work_when_run_again(tmp_path):
    data_dir, model_dir = tmp_path / "data", tmp_path / "run"
    flags = (f"--data_dir={data_dir}", f"--model_dir={model_dir}", SMOKE)
    result = helpers.run_module("quickstart", *flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "[7/7] One request with curl" in out and "stopping the server" in out
    for name in ("eval_test.json", "predicted_vs_true_test.png", "quickstart.log",
                 os.path.join("export", "1", "saved_model.pb")):
        assert (model_dir / name).is_file(), name
    assert (data_dir / "gbt_baseline.json").is_file()

    # The curl command it printed, sent by hand to the export, gives the answer the server gave.
    curl = next(line.strip()[2:] for line in out.splitlines() if line.strip().startswith("$ curl "))
    row = json.loads(shlex.split(curl)[-1])["instances"][0]
    answer = json.loads(out.split(curl, 1)[1].strip().splitlines()[0])["predictions"][0]
    kinds = json.loads((data_dir / "metadata.json").read_text())["features"]
    serve = tf.saved_model.load(str(model_dir / "export" / "1")).signatures["serving_default"]
    expected = serve(**{c: tf.constant([v], data.DTYPES[kinds[c]]) for c, v in row.items()})["prediction"]
    np.testing.assert_allclose(answer, float(expected[0]), rtol=1e-4)
    assert re.search(rf"predicted {answer:.1f} bikers for that hour", out)

    again = helpers.run_module("quickstart", *flags)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"kept {data_dir}" in again.stdout and f"kept {model_dir / 'export' / '1'}" in again.stdout

    broken = helpers.run_module("quickstart", *flags, "--gin_bindings=wide_deep.nope = 1")
    assert broken.returncode != 0
    assert "step 3 failed" in broken.stderr and "projects.wide_deep.train" in broken.stderr
    assert str(model_dir / "quickstart.log") in broken.stderr
