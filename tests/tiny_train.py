"""Trains TinyTask with the common flags; writes this worker's final weights to <model_dir>/weights_<i>.npz.

Exists for the multi-worker tests: `python -m core.launch --workers=2 -- python -m tests.tiny_train ...`.
With --embedding, trains TinyEmbeddingTask instead, and the chief (or a single process) writes where each
variable's shards live (<model_dir>/shards.json) instead of the weights, for the parameter-server tests.
"""

import json
import os

import numpy as np
from absl import flags

from core import runtime, trainer
from tests.tiny_task import TinyEmbeddingTask, TinyTask

flags.DEFINE_bool("embedding", False, "Train TinyEmbeddingTask (an embedding table) instead of TinyTask.")
flags.DEFINE_integer("train_steps", 20, "TrainConfig.train_steps.")
flags.DEFINE_integer("steps_per_loop", 10, "TrainConfig.steps_per_loop.")
FLAGS = flags.FLAGS


def main(argv):
    options = runtime.setup()
    task = TinyEmbeddingTask() if FLAGS.embedding else TinyTask(batch_size=32)
    model_holder = {}
    build_model = task.build_model
    task.build_model = lambda: model_holder.setdefault("model", build_model())
    config = trainer.TrainConfig(loop="fit", train_steps=FLAGS.train_steps, steps_per_loop=FLAGS.steps_per_loop)
    trainer.train(task, options=options, config=config)
    model = model_holder["model"]
    task_info = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if FLAGS.embedding and task_info.get("type", "chief") == "chief":
        shards = {}
        for weight in model.weights:
            value = weight.value
            parts = getattr(value, "variables", [value])
            shards[weight.path] = [[list(map(int, p.shape)), p.device] for p in parts]
        with open(os.path.join(options.model_dir, "shards.json"), "w") as f:
            json.dump(shards, f, indent=1)
        return
    np.savez(os.path.join(options.model_dir, f"weights_{task_info.get('index', 0)}.npz"),
             *[w.numpy() for w in model.weights])


if __name__ == "__main__":
    runtime.run(main)
