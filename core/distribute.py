"""tf.distribute strategy from a flag, and which worker is allowed to write outputs.

Strategies and what runs them here:
  default                 no distribution (one device); both training loops.
  one_device              everything placed on one device (GPU:0 if there is one, else CPU:0).
  mirrored                synchronous data parallelism across the local devices; both loops.
                          On CPU use --num_cpu_devices=N to get N replicas.
  multi_worker_mirrored   synchronous data parallelism across processes described by TF_CONFIG
                          (start them with `python -m core.launch`); custom loop only, because
                          Keras 3 `fit` fails under it (keras-team/keras#20585).
  parameter_server        asynchronous training with a coordinator; needs a ClusterCoordinator
                          loop that the trainer does not have yet, so it fails with that message.
  tpu                     TPUStrategy on the TPU named by --tpu.
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf
from absl import logging

from core.config import STRATEGIES, ConfigError, error_summary


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
        raise ConfigError(
            "--strategy=parameter_server needs a training loop driven by "
            "tf.distribute.coordinator.ClusterCoordinator, which core.trainer does not provide yet; "
            "fork the custom loop in your project (see core/trainer.py) to add one."
        )
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


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True under MultiWorkerMirroredStrategy, where Keras 3 `fit` cannot run."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


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
