"""tf.distribute strategy from a flag, and which worker is allowed to write outputs.

Strategies and what runs them here:
  default                 no distribution (one device); both training loops.
  one_device              everything placed on one device (GPU:0 if there is one, else CPU:0).
  mirrored                synchronous data parallelism across the local devices; both loops.
                          On CPU use --num_cpu_devices=N to get N replicas.
  multi_worker_mirrored   synchronous data parallelism across processes described by TF_CONFIG
                          (start them with `python -m core.launch`); custom loop only, because
                          Keras 3 `fit` fails under it (keras-team/keras#20585).
  parameter_server        asynchronous training: the chief drives a ClusterCoordinator loop, the
                          workers run the steps it schedules, and the variables live on the
                          parameter servers, large ones split into shards (`partitioner` below).
                          Start it with `python -m core.launch --ps=N --workers=M`; custom loop
                          only, because Keras 3 `fit` has no ClusterCoordinator path.
  tpu                     TPUStrategy on the TPU named by --tpu.
"""

from __future__ import annotations

import contextlib
import json
import logging as logging_lib
import os
import shutil
import signal
import sys
import time

import gin
import tensorflow as tf
from absl import logging
from tensorflow.python.distribute import sharded_variable

from core.config import STRATEGIES, ConfigError, error_summary

_parameter_server_strategy = None


def create_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """Returns the strategy named by --strategy; raises ConfigError for names it cannot build here."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError(
                "--strategy=multi_worker_mirrored needs TF_CONFIG describing the cluster; start the "
                "workers with `python -m core.launch --workers=N -- <command>`."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        resolver = _cluster_resolver(name, needs=("ps", "worker"))
        if resolver.task_type != "chief":
            raise ConfigError(
                f"--strategy=parameter_server: TF_CONFIG makes this process the {resolver.task_type} task, which "
                "builds no strategy: a worker or ps task only serves the chief (core.runtime.setup() does that "
                "before anything else), and the cluster has no other kind of task.")
        global _parameter_server_strategy
        if _parameter_server_strategy is None:  # one per process: it connects the process to the cluster
            # The coordinator logs a line at every join (several per loop), and the strategy one per variable
            # as the step is traced; progress is the trainer's to report.
            logging_lib.getLogger("tensorflow").addFilter(lambda record: not record.getMessage().startswith(
                ("Waiting for all global closures", "Reduce to /device:CPU:0 then broadcast")))
            num_ps = resolver.cluster_spec().num_tasks("ps")
            _parameter_server_strategy = tf.distribute.ParameterServerStrategy(
                resolver, variable_partitioner=partitioner(num_ps))
        return _parameter_server_strategy
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        # The resolver raises ValueError without a TPU name, URLError (an OSError) when it cannot reach
        # the cloud metadata server, and an OpError when the TPU does not answer.
        except (ValueError, OSError, RuntimeError, tf.errors.OpError) as e:
            raise ConfigError(
                f"--strategy=tpu: no TPU reachable with --tpu={tpu!r} ({error_summary(e)}). Pass the TPU's "
                "name or grpc:// address with --tpu, or pick another --strategy."
            ) from e
    raise ConfigError(f"--strategy={name}: expected one of {', '.join(STRATEGIES)}.")


def _cluster_resolver(name: str, needs: tuple[str, ...]) -> tf.distribute.cluster_resolver.TFConfigClusterResolver:
    """The cluster TF_CONFIG describes; ConfigError naming what is missing for --strategy=`name`."""
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            f"--strategy={name} needs TF_CONFIG describing the cluster; start the tasks with "
            "`python -m core.launch --ps=2 --workers=2 -- <command>`, or set TF_CONFIG on each machine "
            "(README: Scale-out).")
    try:
        config = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not JSON ({e}): {os.environ['TF_CONFIG'][:200]!r}") from e
    cluster = config.get("cluster", {}) if isinstance(config, dict) else {}
    missing = [job for job in ("chief", *needs) if not cluster.get(job)]
    if missing or not isinstance(config.get("task"), dict):
        raise ConfigError(
            f"--strategy={name}: TF_CONFIG must name a cluster with {', '.join(('chief', *needs))} tasks and this "
            f"process's task; it lacks {', '.join(missing) or 'task'}: {os.environ['TF_CONFIG'][:300]}")
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


@gin.configurable
def partitioner(num_ps: int, kind: str = "min_size", min_shard_bytes: int = 256 << 10,
                max_shards: int | None = None, num_shards: int | None = None):
    """How --strategy=parameter_server splits variables over the `num_ps` parameter servers.

      min_size      `MinSizePartitioner` (the default): a variable of more than `min_shard_bytes` is
                    split into ceil(bytes / min_shard_bytes) shards, at most `max_shards` (default: one
                    per parameter server) and at most its first dimension; smaller ones stay whole. With
                    the defaults and 2 servers, an embedding table of 20,000 x 100 floats (8 MB) is split
                    in two, a 64 x 3 kernel is not.
      fixed_shards  `FixedShardsPartitioner`: every variable in `num_shards` shards (default: one per
                    parameter server), as far as its first dimension allows.
      none          no sharding: each variable whole on one server, placed round-robin.

    Bind it in gin, e.g. `partitioner.kind = 'fixed_shards'`. Shards split the first dimension (an
    embedding's rows); a checkpoint holds each variable whole, so evaluate and export read it without
    a cluster.
    """
    partitioners = tf.distribute.experimental.partitioners
    if kind == "none":
        return None
    if kind == "min_size":
        return partitioners.MinSizePartitioner(min_shard_bytes=min_shard_bytes, max_shards=max_shards or num_ps)
    if kind == "fixed_shards":
        return partitioners.FixedShardsPartitioner(num_shards=num_shards or num_ps)
    raise ConfigError(f"partitioner.kind={kind!r}: expected 'min_size', 'fixed_shards' or 'none'.")


class _WholeShardedVariable(sharded_variable.ShardedVariable):
    """A ShardedVariable that a Keras 3 variable can hold and checkpoint.

    A Keras 3 variable saves the tf.Variable it wraps through `_serialize_to_tensors`, which
    ShardedVariable lacks (it only has the older saveables, per shard), so Keras would hand the checkpoint
    the sharded object itself and the save fails. This one saves the variable whole, gathered on the chief,
    and a restore splits it again: the model's part of the checkpoint is the one a single process writes,
    so `evaluate` and `export` read it without a cluster. (The optimizer keeps a slot per shard, so a
    resume needs the same shards.)
    """

    def _serialize_to_tensors(self):
        return {"VARIABLE_VALUE": tf.concat([v.read_value() for v in self.variables], axis=0)}

    def _restore_from_tensors(self, restored_tensors):
        return self.assign(restored_tensors["VARIABLE_VALUE"])


def variable_scope(strategy: tf.distribute.Strategy):
    """Enter inside `strategy.scope()` when building a model: under parameter servers, sharded variables
    become ones that Keras can checkpoint (_WholeShardedVariable); otherwise nothing changes."""
    if not is_parameter_server(strategy):
        return contextlib.nullcontext()

    def creator(next_creator, **kwargs):
        variable = next_creator(**kwargs)
        if type(variable) is sharded_variable.ShardedVariable:
            variable = _WholeShardedVariable(variable.variables, name=variable.name)
        return variable

    return tf.variable_creator_scope(creator)


def trainable_variables(model) -> list:
    """What to differentiate and update: the model's trainable variables, with each sharded one replaced
    by its shards. Keras 3 variables cannot be watched by a GradientTape when they hold shards (they have no
    single handle); the shards can, and the optimizer keeps its slots beside each shard on its server."""
    result = []
    for variable in model.trainable_variables:
        value = getattr(variable, "value", None)
        result.extend(value.variables if isinstance(value, sharded_variable.ShardedVariable) else [variable])
    return result


def serve_if_cluster_task(strategy_name: str) -> None:
    """In a parameter-server cluster, a `worker` or `ps` task only serves: start its TensorFlow server
    and block until the process is stopped (the chief's launcher or the cluster manager does that).
    Returns at once for the chief, and for every other strategy."""
    if strategy_name != "parameter_server" or "TF_CONFIG" not in os.environ:
        return
    resolver = _cluster_resolver(strategy_name, needs=("ps", "worker"))
    if resolver.task_type not in ("worker", "ps"):
        return
    # More inter-op threads than cores, as TensorFlow's guide does for small machines: a cluster run in one
    # process here hung with the default pool (one thread per core) of 2 cores.
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=max(4, 2 * (os.cpu_count() or 1)))
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, config=config, protocol="grpc", start=True)
    logging.info("Serving as %s %d of the parameter-server cluster at %s", resolver.task_type, resolver.task_id,
                 server.target)
    sys.stdout.flush()
    # A Ctrl-C in the terminal reaches every process of the launcher's group: the chief stops at a step
    # boundary and saves, which it cannot do if the servers holding the variables are gone. SIGTERM (the
    # launcher's, or a cluster manager's) stops a server; as a container's first process, Python would
    # ignore it without a handler. The server runs on threads of its own, so the main thread only waits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    while True:
        time.sleep(3600)


def num_workers() -> int:
    """The worker tasks of the cluster TF_CONFIG describes (ParameterServerStrategy keeps no public count)."""
    return tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec().num_tasks("worker")


def is_parameter_server(strategy: tf.distribute.Strategy) -> bool:
    """True under ParameterServerStrategy, trained by the chief's ClusterCoordinator loop."""
    return isinstance(strategy, tf.distribute.ParameterServerStrategy)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True under MultiWorkerMirroredStrategy, where Keras 3 `fit` cannot run."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def check_same_start(strategy: tf.distribute.Strategy, start: int, restored_from: str | None, model_dir: str) -> None:
    """Under MultiWorkerMirroredStrategy: stops every worker, naming the steps, unless all restored the chief's step.

    Each worker restores the newest checkpoint it sees in its --model_dir. On separate machines without a
    shared filesystem, or with a stale local copy, one would start from another step than the chief and
    the replicas would train apart without any error. Collective, so every worker must call it.
    """
    per_replica = strategy.run(lambda: tf.constant([start], tf.int64))  # one value per replica, all-gathered
    steps = [int(s) for s in strategy.gather(per_replica, axis=0).numpy()]
    if len(set(steps)) > 1:
        resolver = strategy.cluster_resolver
        raise ConfigError(
            f"the workers restored different steps: {steps} (chief first). This worker "
            f"({resolver.task_type} {resolver.task_id}) restored step {start} from "
            f"{restored_from or 'no checkpoint'} in {model_dir}. Every worker must read the chief's model dir: "
            "give all of them the same --model_dir on a filesystem they share (an NFS mount, say).")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True in the one process that writes checkpoints, summaries and exports."""
    return strategy.extended.should_checkpoint


def write_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process writes: model_dir for the chief, a scratch folder for other workers.

    Under MultiWorkerMirroredStrategy every worker must take part in saving a checkpoint (the
    save reads mirrored variables collectively), but only the chief's copy is kept.
    """
    if is_chief(strategy):
        return model_dir
    task_type, task_id = strategy.cluster_resolver.task_type, strategy.cluster_resolver.task_id
    path = os.path.join(model_dir, f".{task_type}_{task_id}_scratch")
    # A killed run's scratch checkpoints would make this worker's saves differ from the chief's, and
    # every worker must take part in every save.
    shutil.rmtree(path, ignore_errors=True)
    logging.info("Not the chief: writing scratch outputs to %s", path)
    return path
