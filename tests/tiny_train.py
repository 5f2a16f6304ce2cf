"""Trains TinyTask with the common flags; writes this worker's final weights to <model_dir>/weights_<i>.npz.

Exists for the multi-worker test: `python -m core.launch --workers=2 -- python -m tests.tiny_train ...`.
"""

import json
import os

import numpy as np

from core import runtime, trainer
from tests.tiny_task import TinyTask


def main(argv):
    options = runtime.setup()
    task = TinyTask(batch_size=32)
    model_holder = {}
    build_model = task.build_model
    task.build_model = lambda: model_holder.setdefault("model", build_model())
    trainer.train(task, options=options, config=trainer.TrainConfig(loop="fit", train_steps=20, steps_per_loop=10))
    index = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0)
    np.savez(os.path.join(options.model_dir, f"weights_{index}.npz"),
             *[w.numpy() for w in model_holder["model"].weights])


if __name__ == "__main__":
    runtime.run(main)
