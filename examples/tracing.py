"""Eager execution vs tf.function: tracing side effects, retracing, input_signature, AutoGraph and name scopes.

Run from the repository root:

    python -m examples.tracing

Each demonstration defines its tf.functions inside itself so that its tracing counts start from zero every time
it is called. In a real program define a tf.function once, at module level or on an object: one created anew on
every call is traced anew on every call.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def eager_vs_graph() -> dict:
    """The same computation eagerly and in a tf.function: Python side effects run per trace, tf.print per call."""
    x = tf.constant([1.0, 2.0, 3.0])
    eager_result = x * 2.0 + 1.0  # eager: the value exists as soon as the line runs
    traces = []  # Python side effects inside a tf.function happen only while it is being traced

    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "tf_print.log")

        @tf.function
        def affine(x: tf.Tensor) -> tf.Tensor:
            # Python code runs only while tracing: this print shows once however often affine is called,
            # and the list (which a test can count) grows with it.
            print("  (Python print inside affine: tracing)")
            traces.append({"executing_eagerly": tf.executing_eagerly(), "tensor_type": type(x).__name__})
            # tf.print is an op in the graph, so it runs on every call; a file keeps its output countable.
            tf.print("affine called with", x, output_stream=f"file://{log_path}")
            return x * 2.0 + 1.0

        graph_results = [affine(x) for _ in range(3)]
        with open(log_path) as f:
            tf_print_lines = f.read().splitlines()

    return {
        "executing_eagerly outside": tf.executing_eagerly(),
        "eager tensor type": type(eager_result).__name__,
        "eager result": eager_result.numpy(),
        "calls": len(graph_results),
        "python side effects (traces)": len(traces),
        "executing_eagerly inside": traces[0]["executing_eagerly"],
        "tensor type inside": traces[0]["tensor_type"],  # symbolic: no value, no .numpy()
        "tf.print runs": len(tf_print_lines),
        "tf.print line": tf_print_lines[0],
        "graph result equals eager": bool(tf.reduce_all(graph_results[-1] == eager_result)),
    }


def retracing_counts() -> dict:
    """How many traces different argument kinds cost, read from `experimental_get_tracing_count()`."""

    @tf.function
    def double(x):
        return x * 2

    # Python scalars are part of the trace key by value: every new value is a new graph.
    for value in (1, 2, 2, 3):
        double(value)
    counts = {"python ints 1, 2, 2, 3": double.experimental_get_tracing_count()}

    @tf.function
    def square(x):
        return x * x

    # Tensors are keyed by dtype and shape only, so new values reuse the graph.
    for value in (1, 2, 3):
        square(tf.constant(value))
    counts["int32 scalar tensors 1, 2, 3"] = square.experimental_get_tracing_count()
    # A NumPy scalar is converted to a tensor of its dtype, so np.int32 matches the int32 trace
    # (np.int64, NumPy's default integer, would be a new int64 trace).
    square(np.int32(4))
    counts["+ np.int32(4)"] = square.experimental_get_tracing_count()
    square(tf.constant(1.0))
    counts["+ float32 scalar tensor"] = square.experimental_get_tracing_count()
    # Without reduce_retracing every new shape is a new trace; TF does not relax shapes by itself.
    for length in (2, 3, 4):
        square(tf.ones([length], tf.int32))
    counts["+ int32 tensors of shape [2], [3], [4]"] = square.experimental_get_tracing_count()
    # TF also logs "N out of the last M calls ... triggered tf.function retracing" here: the hint to fix it.

    @tf.function(reduce_retracing=True)
    def relaxed(x):
        return x * x

    # reduce_retracing traces [1] as is, then generalises to [None] on the second shape and reuses that.
    for length in (1, 2, 3, 4):
        relaxed(tf.ones([length], tf.int32))
    counts["reduce_retracing: shapes [1], [2], [3], [4]"] = relaxed.experimental_get_tracing_count()
    # The concrete function a call would dispatch to shows the relaxed shape; looking it up traces nothing.
    args, _ = relaxed.get_concrete_function(tf.ones([7], tf.int32)).structured_input_signature
    counts["reduce_retracing: shape [7] dispatches to"] = str(args[0].shape)
    counts["reduce_retracing: traces after the lookup"] = relaxed.experimental_get_tracing_count()
    return counts


def input_signature_counts() -> dict:
    """An input_signature fixes the trace up front: one graph for every length, and mismatched tensors raise."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def total(x):
        return tf.reduce_sum(x)

    for length in (1, 3, 5, 8):
        total(tf.ones([length]))
    result = {"traces after lengths 1, 3, 5, 8": total.experimental_get_tracing_count()}
    try:
        total(tf.constant([1, 2], tf.int32))  # a tensor is never cast: its dtype must match the spec
    except TypeError as e:
        result["int32 tensor raises"] = type(e).__name__
    # Python lists and NumPy arrays are not tensors yet: they are converted to the spec's dtype and accepted.
    result["python int list [1, 2] gives"] = float(total([1, 2]))
    result["np.int64 array [1, 2] gives"] = float(total(np.array([1, 2])))
    try:
        total(tf.ones([2, 2]))  # the wrong rank does not fit [None]
    except TypeError as e:
        result["rank-2 tensor raises"] = type(e).__name__
    result["traces at the end"] = total.experimental_get_tracing_count()
    return result


def sign_and_total(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Doubles x if its sum is positive, else negates it; also sums x with a Python for loop."""
    if tf.reduce_sum(x) > 0:  # a tensor condition: AutoGraph turns this into a graph conditional
        y = x * 2.0
    else:
        y = -x
    total = tf.constant(0.0)
    for value in x:  # iterating a tensor: AutoGraph turns this into a graph while loop
        total += value
    return y, total


def autograph_code() -> dict:
    """What AutoGraph makes of Python `if`/`for` over tensors, and the graph ops it produces."""
    function = tf.function(sign_and_total)
    code = tf.autograph.to_code(function.python_function)
    graph = function.get_concrete_function(tf.TensorSpec([None], tf.float32)).graph
    op_types = sorted({op.type for op in graph.get_operations()})
    positive, negative = function(tf.constant([1.0, 2.0])), function(tf.constant([1.0, -3.0]))
    return {
        "code": code,
        "uses ag__.if_stmt": "ag__.if_stmt" in code,
        "uses ag__.for_stmt": "ag__.for_stmt" in code,
        "control-flow ops": [t for t in op_types if "If" in t or "While" in t],
        "f([1, 2])": [v.numpy().tolist() for v in positive],
        "f([1, -3])": [v.numpy().tolist() for v in negative],
    }


def name_scope_op_names() -> list[str]:
    """Names of the graph ops created under `tf.name_scope("encoder")` inside a tf.function."""

    @tf.function
    def encode(x):
        with tf.name_scope("encoder"):
            hidden = tf.nn.relu(x * 2.0 + 1.0)
        return tf.reduce_sum(hidden)

    graph = encode.get_concrete_function(tf.TensorSpec([None], tf.float32)).graph
    return [op.name for op in graph.get_operations() if op.name.startswith("encoder/")]


def main() -> None:
    """Prints every demonstration with a label."""
    np.set_printoptions(precision=3, suppress=True)
    print("== eager vs graph")
    for key, value in eager_vs_graph().items():
        print(f"{key}: {value}")
    print("== retracing counts (experimental_get_tracing_count, cumulative per function)")
    for key, value in retracing_counts().items():
        print(f"{key}: {value}")
    print("== input_signature=[TensorSpec([None], float32)]")
    for key, value in input_signature_counts().items():
        print(f"{key}: {value}")
    print("== autograph")
    result = autograph_code()
    print("generated code:\n  " + result.pop("code").rstrip().replace("\n", "\n  "))
    for key, value in result.items():
        print(f"{key}: {value}")
    print("== name_scope")
    print(f"ops under encoder/: {name_scope_op_names()}")


if __name__ == "__main__":
    main()
