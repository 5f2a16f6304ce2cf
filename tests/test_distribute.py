import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from core import distribute, evaluation, launch
from core.config import ConfigError, RunOptions
from tests import tiny_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_and_mirrored_strategies():
    assert distribute.create_strategy("default").num_replicas_in_sync == 1
    assert distribute.create_strategy("one_device").num_replicas_in_sync == 1
    mirrored = distribute.create_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2  # conftest splits the CPU in two
    assert distribute.is_chief(mirrored) and not distribute.is_multi_worker(mirrored)
    assert distribute.write_dir("/m", mirrored) == "/m"


def test_multi_worker_without_tf_config_says_how_to_launch(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="core.launch"):
        distribute.create_strategy("multi_worker_mirrored")


def test_parameter_server_needs_a_cluster_and_names_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="core.launch --ps=2"):
        distribute.create_strategy("parameter_server")
    worker_only = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(worker_only))
    with pytest.raises(ConfigError, match="lacks chief, ps"):
        distribute.create_strategy("parameter_server")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not JSON"):
        distribute.serve_if_cluster_task("parameter_server")
    distribute.serve_if_cluster_task("multi_worker_mirrored")  # returns: only parameter-server tasks serve


def test_partitioner_splits_large_tables_over_the_servers():
    min_size = distribute.partitioner(num_ps=2)
    table = tf.TensorShape([20_000, 100])  # 8 MB of float32
    assert min_size(table, tf.float32) == [2, 1]
    assert min_size(tf.TensorShape([64, 3]), tf.float32) == [1, 1]  # small: whole on one server
    assert distribute.partitioner(num_ps=3, kind="fixed_shards")(tf.TensorShape([64, 3]), tf.float32) == [3, 1]
    assert distribute.partitioner(num_ps=2, kind="none") is None
    with pytest.raises(ConfigError, match="partitioner.kind='round_robin'"):
        distribute.partitioner(num_ps=2, kind="round_robin")


def test_tf_config_describes_the_cluster():
    config = json.loads(launch.tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "worker", 1))
    assert config == {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    ports = launch.free_ports(3, "127.0.0.1")
    assert len(set(ports)) == 3


def test_cluster_spec_has_a_chief_and_servers_with_ps():
    assert list(launch.cluster_spec("127.0.0.1", 2, 0)) == ["worker"]
    cluster = launch.cluster_spec("127.0.0.1", 2, 3)
    assert {k: len(v) for k, v in cluster.items()} == {"chief": 1, "worker": 2, "ps": 3}
    assert len({a for v in cluster.values() for a in v}) == 6


def test_launch_returns_the_failing_workers_exit_code():
    worker = "import json, os, sys; sys.exit(3 * json.loads(os.environ['TF_CONFIG'])['task']['index'])"
    code = launch.launch([sys.executable, "-c", worker], workers=2)
    assert code == 3


def test_launch_restarts_a_dying_worker_up_to_max_restarts_then_stops_the_cluster():
    task = ("import json, os, sys, time\n"
            "kind = json.loads(os.environ['TF_CONFIG'])['task']['type']\n"
            "sys.exit(3) if kind == 'worker' else time.sleep(120)\n")
    started = time.time()
    assert launch.launch([sys.executable, "-c", task], workers=1, ps=1, max_restarts=2) == 3
    assert time.time() - started < 60  # the sleeping chief and server were stopped, not waited for


def test_launch_with_ps_refuses_a_command_that_names_another_strategy():
    with pytest.raises(ValueError, match="says --strategy=mirrored"):
        launch.launch([sys.executable, "-c", "pass", "--strategy=mirrored"], workers=1, ps=1)


def test_two_workers_train_in_sync_and_only_the_chief_writes(tmp_path):
    model_dir = tmp_path / "mw"
    result = subprocess.run(
        [sys.executable, "-m", "core.launch", "--workers=2", "--",
         sys.executable, "-m", "tests.tiny_train", f"--model_dir={model_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "using the custom loop instead" in result.stdout  # fit is not possible under MWMS
    weights = [np.load(model_dir / f"weights_{i}.npz") for i in range(2)]
    assert len(weights[0].files) == 4
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    assert os.path.basename(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == "ckpt-20"
    leftovers = [p for p in os.listdir(model_dir) if p.startswith(".worker")]
    assert leftovers == []  # the non-chief's scratch folder is removed


def _run(args, **kwargs):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"), **kwargs)


def _launch_ps(model_dir, *args, workers=2, ps=2):
    return [sys.executable, "-m", "core.launch", f"--ps={ps}", f"--workers={workers}", "--",
            sys.executable, "-m", "tests.tiny_train", "--embedding", f"--model_dir={model_dir}", *args]


def test_parameter_servers_hold_the_table_in_shards_and_train_as_one_process(tmp_path):
    """One worker runs the steps one after another, so the sharded run must equal a single process's."""
    shards = "--gin_bindings=partitioner.kind='fixed_shards'"
    result = _run(_launch_ps(tmp_path / "ps", shards, workers=1))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "using the custom loop, driven by a ClusterCoordinator" in result.stdout
    placed = json.loads((tmp_path / "ps" / "shards.json").read_text())
    assert placed["embedding/embeddings"] == [[[500, 16], "/job:ps/replica:0/task:0/device:CPU:0"],
                                              [[500, 16], "/job:ps/replica:0/task:1/device:CPU:0"]]
    single = _run([sys.executable, "-m", "tests.tiny_train", "--embedding", f"--model_dir={tmp_path / 'one'}"])
    assert single.returncode == 0, single.stderr[-3000:]
    # The chief's checkpoint holds each table whole: a plain model, built without a cluster, restores it.
    sharded, whole = (tiny_task.final_weights(str(tmp_path / d), tiny_task.TinyEmbeddingTask()) for d in ("ps", "one"))
    initial = [w.numpy() for w in tiny_task.TinyEmbeddingTask().build_model().weights]
    for a, b, c in zip(sharded, whole, initial):
        assert np.abs(b - c).max() > 1e-3  # it trained
        np.testing.assert_allclose(a, b, atol=1e-5)  # Adam divides by small second moments: float rounding
    # evaluate's compiled model skips the optimizer's slots, which the chief's checkpoint keeps per shard.
    results, _ = evaluation.evaluate(tiny_task.TinyEmbeddingTask(), RunOptions(model_dir=str(tmp_path / "ps")),
                                     split="validation")
    expected, _ = evaluation.evaluate(tiny_task.TinyEmbeddingTask(), RunOptions(model_dir=str(tmp_path / "one")),
                                      split="validation")
    assert results == pytest.approx(expected, abs=1e-5)


class _Running:
    """A launched cluster whose output is collected as it comes, to act on it mid-run; as a context manager,
    stops whatever still runs at the end (the launcher stops its tasks on SIGTERM), even when a check fails."""

    def __init__(self, args):
        self.process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
                                        start_new_session=True)  # its own process group, for a Ctrl-C
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")),
                                       daemon=True)
        self.reader.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def pid_of(self, task: str) -> int:
        match = re.search(rf"\[launch\] started {task} at \S+, pid (\d+)", self.output)
        assert match, self.output[-3000:]
        return int(match.group(1))

    def wait_for_checkpoint(self, model_dir, step: int, timeout: float = 240) -> None:
        """Until the checkpoint index names a step >= `step` (the index is written after the checkpoint)."""
        deadline = time.time() + timeout
        while _latest_step(model_dir) < step:
            assert self.process.poll() is None and time.time() < deadline, self.output[-4000:]
            time.sleep(0.1)

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def _latest_step(model_dir) -> int:
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


LONG_RUN = ("--train_steps=600", "--steps_per_loop=100")


def _kill_mid_run(model_dir, task: str) -> tuple[int, str]:
    """Launches a LONG_RUN cluster, kills `task` ("worker 1", "chief", ...) with SIGKILL once the first
    checkpoint is in, and returns the launcher's exit code and output."""
    with _Running(_launch_ps(model_dir, *LONG_RUN)) as run:
        run.wait_for_checkpoint(model_dir, 100)
        os.kill(run.pid_of(task), signal.SIGKILL)
        return run.finish(), run.output


def test_a_worker_killed_mid_run_is_started_again_and_training_finishes(tmp_path):
    model_dir = tmp_path / "ps"
    code, output = _kill_mid_run(model_dir, "worker 1")
    assert code == 0, output[-4000:]
    assert "[launch] worker 1 exited with -9; starting it again (restart 1)" in output
    assert "Putting back a closure after it failed" in output  # the coordinator ran that work again
    assert "Finished at step 600" in output
    assert os.path.basename(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == "ckpt-600"


def test_a_killed_chief_resumes_from_its_last_checkpoint_when_run_again(tmp_path):
    model_dir = tmp_path / "ps"
    code, output = _kill_mid_run(model_dir, "chief")
    assert code == 128 + signal.SIGKILL, output[-4000:]
    saved = _latest_step(model_dir)
    assert 100 <= saved < 600
    again = _run(_launch_ps(model_dir, *LONG_RUN))
    assert again.returncode == 0, again.stdout[-4000:]
    assert f"Resumed at step {saved}" in again.stdout
    assert os.path.basename(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == "ckpt-600"


def test_a_worker_that_restored_another_step_than_the_chief_stops_every_worker(tmp_path):
    """A worker whose --model_dir is not the chief's (no shared filesystem, a stale copy) must not train apart."""
    chief_dir, stale_dir = tmp_path / "chief", tmp_path / "stale"
    first = _run([sys.executable, "-m", "tests.tiny_train", f"--model_dir={chief_dir}"])
    assert first.returncode == 0, first.stderr[-3000:]
    cluster = launch.cluster_spec("127.0.0.1", 2, 0)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.tiny_train", f"--model_dir={model_dir}", "--train_steps=40",
             "--strategy=multi_worker_mirrored"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2",
                     TF_CONFIG=launch.tf_config(cluster, "worker", i)))
        for i, model_dir in enumerate([chief_dir, stale_dir])
    ]
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 2, err[-3000:]
        assert "the workers restored different steps: [20, 0] (chief first)" in err
        assert "same --model_dir on a filesystem they share" in err
    assert "(worker 1) restored step 0 from no checkpoint" in outputs[1][1]
    assert os.path.basename(tf.train.latest_checkpoint(str(chief_dir / "checkpoints"))) == "ckpt-20"  # untouched


def test_the_kubernetes_example_gives_every_pod_a_valid_tf_config(tmp_path):
    """docs/cluster/parameter_server.yaml: each role's shell line, run with its pod's name, yields TF_CONFIG
    naming that task in the ConfigMap's cluster, whose address lists match the replica counts."""
    with open(os.path.join(REPO, "docs", "cluster", "parameter_server.yaml")) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    cluster = json.loads(by_kind["ConfigMap", "tf-cluster"]["data"]["cluster.json"])
    (tmp_path / "cluster.json").write_text(by_kind["ConfigMap", "tf-cluster"]["data"]["cluster.json"])
    service = by_kind["Service", "tf"]["metadata"]["name"]
    roles = {"chief": by_kind["Job", "tf-chief"], "worker": by_kind["StatefulSet", "worker"],
             "ps": by_kind["StatefulSet", "ps"]}
    assert len(cluster["chief"]) == 1
    for role in ("worker", "ps"):
        replicas = roles[role]["spec"]["replicas"]
        assert cluster[role] == [f"{role}-{i}.{service}:2222" for i in range(replicas)]
    chief_pod = roles["chief"]["spec"]["template"]["spec"]
    assert cluster["chief"] == [f"{chief_pod['hostname']}.{chief_pod['subdomain']}:2222"]
    for role, resource in roles.items():
        container = resource["spec"]["template"]["spec"]["containers"][0]
        script = container["args"][0]
        assert "--strategy=parameter_server" in script and "--model_dir=" in script
        module = re.search(r"-m (\S+)", script).group(1)
        gin_file = re.search(r"--gin_file=(\S+)", script).group(1)
        assert os.path.exists(os.path.join(REPO, *module.split(".")) + ".py")
        assert os.path.exists(os.path.join(REPO, gin_file))
        command = shlex.split(script.split(" && ")[1])
        bindings = [arg.split("=", 1)[1] for arg in command if arg.startswith("--gin_bindings=")]
        assert bindings == ["ImageClassificationTask.data_dir='/shared/data/cnn_vision/fashion_mnist'"]
        mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["shared"]
        assert re.search(r"--model_dir=(\S+)", script).group(1).startswith(mount + "/")
        index = 1 if role != "chief" else 0
        export = script.split(" && ")[0].replace("/etc/tf/cluster.json", str(tmp_path / "cluster.json"))
        shell = subprocess.run(["sh", "-c", f"{export}; printf %s \"$TF_CONFIG\""], capture_output=True, text=True,
                               env=dict(os.environ, HOSTNAME=f"{role}-{index}"), check=True)
        assert json.loads(shell.stdout) == {"cluster": cluster, "task": {"type": role, "index": index}}


@pytest.mark.slow
def test_a_killed_parameter_server_stops_the_chief_clearly_and_a_rerun_resumes(tmp_path):
    model_dir = tmp_path / "ps"
    code, output = _kill_mid_run(model_dir, "ps 0")
    assert code == 2, output[-4000:]
    assert "error: a task of the cluster stopped answering" in output and "resumes from" in output
    again = _run(_launch_ps(model_dir, *LONG_RUN))
    assert again.returncode == 0 and "Resumed at step" in again.stdout, again.stdout[-4000:]
    assert os.path.basename(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == "ckpt-600"


def test_ctrl_c_lets_the_chief_save_before_the_servers_stop(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the servers ignore it, the chief saves where it stops."""
    model_dir = tmp_path / "ps"
    with _Running(_launch_ps(model_dir, "--train_steps=5000", "--steps_per_loop=1000")) as run:
        deadline = time.time() + 240
        while "Wrote operative_config.gin" not in run.output:  # written as the loop starts
            assert run.process.poll() is None and time.time() < deadline, run.output[-4000:]
            time.sleep(0.1)
        time.sleep(2)  # some steps in
        os.killpg(run.process.pid, signal.SIGINT)
        assert run.finish() == 130, run.output[-4000:]
    assert "[launch] Ctrl-C: waiting for the chief to save a checkpoint" in run.output
    assert "run the same command to resume from there" in run.output
    assert 0 < _latest_step(model_dir) < 5000


@pytest.mark.slow
def test_a_new_chief_resumes_against_the_servers_the_killed_one_left_running(tmp_path):
    """On a cluster the workers and servers outlive a killed chief; the chief started again in its place resumes."""
    model_dir = tmp_path / "ps"
    cluster = launch.cluster_spec("127.0.0.1", 2, 2)
    command = [sys.executable, "-m", "tests.tiny_train", "--embedding", f"--model_dir={model_dir}",
               "--strategy=parameter_server", "--train_steps=2000", "--steps_per_loop=100"]

    def start(kind, index):
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=launch.tf_config(cluster, kind, index))
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    servers = [start(kind, i) for kind in ("worker", "ps") for i in range(2)]
    try:
        chief = start("chief", 0)
        deadline = time.time() + 240
        while _latest_step(model_dir) < 200:
            assert chief.poll() is None and time.time() < deadline, chief.communicate()[0][-3000:]
            time.sleep(0.1)
        chief.kill()
        chief.wait()
        assert all(server.poll() is None for server in servers)  # still serving
        output = start("chief", 0).communicate(timeout=300)[0]
        assert "Resumed at step" in output and "Finished at step 2000" in output, output[-3000:]
    finally:
        for process in servers:
            process.terminate()
        for process in servers:
            assert process.wait(timeout=60) == 0  # SIGTERM ends a server cleanly
