"""Tensors and basic ops: attributes, Variables, arithmetic and broadcasting, stacking, initializers, image crops.

Run from the repository root:

    python -m examples.tensors
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def tensor_attributes() -> dict:
    """A constant's shape, dtype and value; a Variable changing in place; NumPy <-> tensor conversion."""
    t = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # A tensor is immutable; a Variable is the mutable state a model trains.
    v = tf.Variable([1.0, 2.0])
    v.assign([10.0, 20.0])
    v.assign_add([1.0, 1.0])
    array = np.arange(4, dtype=np.int64)
    from_numpy = tf.convert_to_tensor(array)  # keeps NumPy's dtype (int64), unlike Python ints (int32)
    return {
        "shape": tuple(t.shape),
        "dtype": t.dtype.name,
        "numpy": t.numpy(),
        "numpy_type": type(t.numpy()).__name__,
        "variable_after_assign": v.numpy(),
        "python_int_dtype": tf.constant(1).dtype.name,
        "python_float_dtype": tf.constant(1.0).dtype.name,
        "from_numpy_dtype": from_numpy.dtype.name,
        "back_to_numpy_equal": bool(np.array_equal(from_numpy.numpy(), array)),
        # Ops accept NumPy arrays directly and return tensors.
        "numpy_in_op_type": type(tf.add(array, 1)).__name__,
    }


def basic_ops() -> dict:
    """Elementwise arithmetic, broadcasting, matmul, reductions, slicing, reshape, cast and concat."""
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])  # (2, 2)
    row = tf.constant([10.0, 20.0])  # (2,) broadcasts against every row of a
    column = tf.constant([[100.0], [200.0]])  # (2, 1) broadcasts against every column
    return {
        "a + a": (a + a).numpy(),
        "a * a (elementwise)": (a * a).numpy(),
        "a + row": (a + row).numpy(),
        "a + column": (a + column).numpy(),
        "tf.matmul(a, a)": tf.matmul(a, a).numpy(),
        "a @ a": (a @ a).numpy(),
        "reduce_sum": tf.reduce_sum(a).numpy(),
        "reduce_sum axis=0": tf.reduce_sum(a, axis=0).numpy(),  # collapses rows: one value per column
        "reduce_mean axis=1": tf.reduce_mean(a, axis=1).numpy(),  # collapses columns: one value per row
        "a[1]": a[1].numpy(),
        "a[:, 0]": a[:, 0].numpy(),
        "a[..., -1]": a[..., -1].numpy(),
        "reshape to (4,)": tf.reshape(a, [4]).numpy(),
        "reshape to (1, -1)": tf.reshape(a, [1, -1]).shape.as_list(),  # -1: inferred from the size
        "cast to int32": tf.cast(a * 1.7, tf.int32).numpy(),  # truncates toward zero
        "concat axis=0 shape": tf.concat([a, a], axis=0).shape.as_list(),
        "concat axis=1 shape": tf.concat([a, a], axis=1).shape.as_list(),
    }


def stack_and_unstack() -> dict:
    """`tf.stack` adds an axis, `tf.concat` joins along an existing one, `tf.unstack` undoes `tf.stack`."""
    pieces = [tf.fill([2, 3], float(i)) for i in range(4)]  # four (2, 3) tensors
    stacked = tf.stack(pieces, axis=0)  # (4, 2, 3): a new leading axis
    stacked_last = tf.stack(pieces, axis=-1)  # (2, 3, 4): a new trailing axis
    concatenated = tf.concat(pieces, axis=0)  # (8, 3): the existing axis grows
    unstacked = tf.unstack(stacked, axis=0)
    return {
        "stack axis=0": stacked.shape.as_list(),
        "stack axis=-1": stacked_last.shape.as_list(),
        "concat axis=0": concatenated.shape.as_list(),
        "unstack count": len(unstacked),
        "unstack piece shape": unstacked[0].shape.as_list(),
        "round trip equal": all(bool(tf.reduce_all(p == u)) for p, u in zip(pieces, unstacked)),
    }


def initializers() -> dict:
    """The common keras.initializers: what each fills a (200, 200) kernel with, and how a layer takes them."""
    shape = (200, 200)  # big enough that sample statistics sit near the distribution's
    chosen = {
        "Zeros": keras.initializers.Zeros(),
        "Ones": keras.initializers.Ones(),
        "Constant(0.5)": keras.initializers.Constant(0.5),
        "RandomNormal(0, 0.05)": keras.initializers.RandomNormal(mean=0.0, stddev=0.05, seed=1),
        "RandomUniform(-0.1, 0.1)": keras.initializers.RandomUniform(minval=-0.1, maxval=0.1, seed=1),
        # Redraws anything beyond two standard deviations, so no weight starts far out in a tail.
        "TruncatedNormal(0, 0.05)": keras.initializers.TruncatedNormal(mean=0.0, stddev=0.05, seed=1),
        "Identity": keras.initializers.Identity(),  # 2-D only: the identity matrix
        # The defaults of Dense (kernel) and the SELU recipe: scaled by the fan-in/fan-out of the shape.
        "GlorotUniform": keras.initializers.GlorotUniform(seed=1),
        "LecunNormal": keras.initializers.LecunNormal(seed=1),
    }
    stats = {}
    for name, initializer in chosen.items():
        values = np.asarray(initializer(shape))
        stats[name] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
                       "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}
    # A layer takes them through its *_initializer arguments, as objects or by name.
    layer = keras.layers.Dense(3, kernel_initializer=keras.initializers.Identity(), bias_initializer="ones")
    outputs = layer(tf.constant([[1.0, 2.0, 3.0]]))  # I @ x + 1
    return {"statistics": stats, "Dense(identity kernel, ones bias)([1, 2, 3])": np.asarray(outputs)[0]}


def synthetic_image(height: int = 6, width: int = 8) -> tf.Tensor:
    """A (height, width, 1) float32 image whose pixel at (row, col) is row * 10 + col, so crops are readable."""
    rows = tf.range(height, dtype=tf.float32)[:, None]
    cols = tf.range(width, dtype=tf.float32)[None, :]
    return (rows * 10.0 + cols)[..., None]


def image_crops() -> dict:
    """The tf.image crop and pad family on a readable 6x8 image, and how each relates to plain slicing."""
    image = synthetic_image()  # (6, 8, 1)
    oh, ow, th, tw = 1, 2, 3, 4  # offset height/width, target height/width
    crop = tf.image.crop_to_bounding_box(image, oh, ow, th, tw)
    padded = tf.image.pad_to_bounding_box(image, 1, 1, 8, 10)  # one zero row/col above/left, one below/right
    # central_crop keeps int((size - size * fraction) / 2) pixels off each side, so 6 rows * 0.5 keeps 4, not 3.
    central = tf.image.central_crop(image, central_fraction=0.5)
    random = tf.image.random_crop(image, size=[3, 3, 1], seed=7)
    # random_crop is a contiguous window: its top-left pixel value names its offset.
    top_left = int(random[0, 0, 0])
    r, c = divmod(top_left, 10)
    # The stateless variant gives the same crop for the same seed, whatever ran before it.
    stateless_a = tf.image.stateless_random_crop(image, size=[3, 3, 1], seed=(1, 2))
    stateless_b = tf.image.stateless_random_crop(image, size=[3, 3, 1], seed=(1, 2))
    # resize_with_crop_or_pad crops an axis that is too big and zero-pads one that is too small, both centrally.
    resized = tf.image.resize_with_crop_or_pad(image, 4, 10)
    # A 4-D batch takes one box for every image. projects/cnn_vision/data.py `random_translate` pads and then
    # crops each image at its own random offset in one batched tf.gather; crop_to_bounding_box (one offset
    # per call) cannot do that without a Python loop over the batch.
    batch = tf.stack([image, image + 100.0])  # (2, 6, 8, 1)
    batch_crop = tf.image.crop_to_bounding_box(batch, oh, ow, th, tw)
    return {
        "image": image[..., 0].numpy(),
        "crop_to_bounding_box": crop[..., 0].numpy(),
        "crop equals slicing": bool(tf.reduce_all(crop == image[oh:oh + th, ow:ow + tw])),
        "pad_to_bounding_box shape": padded.shape.as_list(),
        "pad keeps the image at the offset": bool(tf.reduce_all(padded[1:7, 1:9] == image)),
        "pad border sum": float(tf.reduce_sum(padded) - tf.reduce_sum(image)),
        "central_crop shape": central.shape.as_list(),
        "central_crop": central[..., 0].numpy(),
        "random_crop shape": random.shape.as_list(),
        "random_crop is a window": bool(tf.reduce_all(random == image[r:r + 3, c:c + 3])),
        "stateless_random_crop repeats": bool(tf.reduce_all(stateless_a == stateless_b)),
        "resize_with_crop_or_pad shape": resized.shape.as_list(),
        "resize_with_crop_or_pad": resized[..., 0].numpy(),
        "batch crop shape": batch_crop.shape.as_list(),
        "batch crop equals slicing": bool(tf.reduce_all(batch_crop == batch[:, oh:oh + th, ow:ow + tw])),
    }


def _print_section(title: str, values: dict) -> None:
    print(f"== {title}")
    for key, value in values.items():
        text = str(value)
        if "\n" in text:  # a 2-D array prints over several lines: indent it under its label
            print(f"{key}:\n  " + text.replace("\n", "\n  "))
        else:
            print(f"{key}: {text}")


def main() -> None:
    """Prints every demonstration with a label."""
    np.set_printoptions(precision=3, suppress=True)
    tf.random.set_seed(0)  # fixes tf.image.random_crop's offset between runs
    _print_section("tensor attributes", tensor_attributes())
    _print_section("basic ops", basic_ops())
    _print_section("stack and unstack", stack_and_unstack())
    result = initializers()
    _print_section("initializers (mean, std, min, max of a 200x200 kernel)", result.pop("statistics"))
    _print_section("initializers in a layer", result)
    _print_section("image crops", image_crops())


if __name__ == "__main__":
    main()
