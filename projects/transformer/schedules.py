"""Learning-rate schedules as serializable `LearningRateSchedule` objects (saved with the optimizer).

`WarmupInverseSqrt` is the Transformer schedule (Vaswani et al., 2017, section 5.3): a linear warm-up
to `peak_learning_rate` over `warmup_steps`, then decay with the inverse square root of the step.
Written with the peak as a parameter instead of the paper's d_model**-0.5 factor; the paper's schedule
is `peak_learning_rate = d_model**-0.5 * warmup_steps**-0.5`.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "transformer"


@keras.saving.register_keras_serializable(package=PACKAGE)
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * min(step / warmup, sqrt(warmup / step)), counting steps from 1."""

    def __init__(self, peak_learning_rate: float, warmup_steps: int, name: str = "warmup_inverse_sqrt"):
        super().__init__()
        if peak_learning_rate <= 0 or warmup_steps < 1:
            raise ValueError(f"{name}: peak_learning_rate must be > 0 and warmup_steps >= 1, got "
                             f"{peak_learning_rate} and {warmup_steps}.")
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.name = name

    def __call__(self, step):
        # The optimizer passes its iteration count, which starts at 0; the formula counts from 1.
        step = ops.cast(step, "float32") + 1.0
        warmup = ops.cast(self.warmup_steps, "float32")
        return self.peak_learning_rate * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self) -> dict:
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "name": self.name}
