"""TF Serving's REST JSON mapping: predict requests to numpy inputs, outputs back to JSON.

Row format:      {"instances": [v1, v2, ...]} or [{"a": .., "b": ..}, ...]   -> {"predictions": [...]}
Columnar format: {"inputs": v} or {"inputs": {"a": [...], "b": [...]}}         -> {"outputs": ... }
Binary strings travel as {"b64": "..."}; outputs whose name ends in `_bytes` are returned that way.
Everything that does not fit the signature raises `BadRequest` with a message naming the input.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np
import orjson
import tensorflow as tf


class ApiError(Exception):
    """An error answered as TF Serving does: {"error": message} with an HTTP status."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


class BadRequest(ApiError, ValueError):
    """A request that does not fit the API or the signature: HTTP 400."""

    def __init__(self, message: str):
        super().__init__(message, 400)


# TF Serving's mapping of TensorFlow error codes to HTTP statuses (http_server.cc); anything else is 500.
_TF_STATUS = {tf.errors.INVALID_ARGUMENT: 400, tf.errors.FAILED_PRECONDITION: 400, tf.errors.OUT_OF_RANGE: 400,
              tf.errors.NOT_FOUND: 404, tf.errors.RESOURCE_EXHAUSTED: 429, tf.errors.UNIMPLEMENTED: 501,
              tf.errors.UNAVAILABLE: 503, tf.errors.DEADLINE_EXCEEDED: 504}


def _op_error_text(error: tf.errors.OpError) -> str:
    """The op's own message, without TF's "Graph execution error" and "Detected at node" framing."""
    lines = [line.strip() for line in (error.message or "").splitlines()]
    framing = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    text = [line for line in lines if line and not line.startswith(framing)]
    node = next((line.split()[3] for line in lines if line.startswith("Detected at node")), None)
    message = text[-1] if text else type(error).__name__
    return f"{message} (op {node})" if node else message


def run_error(error: Exception) -> ApiError:
    """What a failed signature call answers: the graph rejecting the values (a bad image) is the client's 400."""
    if isinstance(error, tf.errors.OpError):
        return ApiError(_op_error_text(error), _TF_STATUS.get(error.error_code, 500))
    return ApiError(f"Internal error: {type(error).__name__}: {error}", 500)


def parse_json(body: bytes) -> dict:
    """The request body as a JSON object (NaN and Infinity allowed, as in TF Serving).

    orjson parses at about twice the speed of the json module; what it refuses (NaN, Infinity, integers
    beyond 64 bits, and every malformed document) goes through the json module, which reads the first
    three and words the error for the rest.
    """
    if not body.strip():
        raise BadRequest("JSON Parse error: The document is empty")
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest(f"JSON Parse error: {e}") from e
        except RecursionError as e:
            raise BadRequest("JSON Parse error: nested too deeply") from e
    if not isinstance(request, dict):
        raise BadRequest(f"JSON Value: {_preview(request)} Is not object")
    return request


def _preview(value, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _json_type(value) -> str:
    return {bool: "Bool", str: "String", dict: "Object", list: "Array", type(None): "Null"}.get(type(value), "Number")


def _type_error(value, name: str, dtype: tf.DType) -> BadRequest:
    # TF Serving's wording, plus the input's name.
    return BadRequest(f"JSON Value: {_preview(value)} Type: {_json_type(value)} is not of expected type: "
                      f"{_TF_NAMES.get(dtype, dtype.name)} (input {name!r})")


_TF_NAMES = {tf.float32: "float", tf.float64: "double"}  # TF's DataTypeString, which TF Serving prints


def _leaf(value, name: str, dtype: tf.DType):
    """One scalar of the request, checked against the input's dtype."""
    if _is_b64(value):
        if dtype != tf.string:
            raise _type_error(value, name, dtype)
        encoded = value["b64"]
        if not isinstance(encoded, str) or "-" in encoded or "_" in encoded:
            raise BadRequest(f"Unable to base64 decode (input {name!r}; standard alphabet expected)")
        encoded = "".join(encoded.split())
        try:
            return base64.b64decode(encoded + ("=" * (-len(encoded) % 4) if "=" not in encoded else ""),
                                    validate=True)
        except binascii.Error as e:
            raise BadRequest(f"Unable to base64 decode (input {name!r}: {e})") from e
    if dtype == tf.string:
        if not isinstance(value, str):
            raise _type_error(value, name, dtype)
        return value.encode("utf-8")
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise _type_error(value, name, dtype)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, name, dtype)
    if dtype.is_integer:
        if isinstance(value, float) and not value.is_integer():
            raise _type_error(value, name, dtype)
        if not dtype.min <= value <= dtype.max:
            raise BadRequest(f"input {name!r}: {value} is out of range for {dtype.name} "
                             f"[{dtype.min}, {dtype.max}].")
    return value


def _shape_of(value, name: str) -> list[int]:
    """The shape of a nested list, raising on ragged lists."""
    if isinstance(value, list):
        if not value:
            return [0]
        shapes = [_shape_of(v, name) for v in value]
        if any(s != shapes[0] for s in shapes):
            raise BadRequest(f"input {name!r}: ragged nested lists; every list at a level must have the same "
                             f"length, got lengths {[s[0] if s else 'scalar' for s in shapes][:10]}.")
        return [len(value)] + shapes[0]
    return []


def to_array(value, name: str, spec: tf.TensorSpec) -> np.ndarray:
    """A JSON (nested) value as a numpy array of the spec's dtype and a shape the spec accepts."""
    dtype = spec.dtype
    array = None if dtype == tf.string else _numeric_fast_path(value, dtype)
    if array is None:  # strings, or a numeric value with something wrong: walk it to say what
        array = _walk(value, name, dtype)
    if not spec.shape.is_compatible_with(array.shape):
        raise BadRequest(f"input {name!r}: shape {list(array.shape)} does not match the signature's "
                         f"{_shape_text(spec.shape)} ({dtype.name}).")
    return array


def _numeric_fast_path(value, dtype: tf.DType) -> np.ndarray | None:
    """np.asarray for well-formed numeric input (an image is thousands of numbers); None if anything is off."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged
        return None
    kind = array.dtype.kind
    if dtype == tf.bool:
        return array if kind == "b" else None
    if kind not in "iuf" or (dtype.is_integer and kind == "f"):
        return None
    if dtype.is_integer and array.size and (array.min() < dtype.min or array.max() > dtype.max):
        return None
    return array.astype(dtype.as_numpy_dtype, copy=False)


def _walk(value, name: str, dtype: tf.DType) -> np.ndarray:
    """Element by element, with a precise error for the first value that does not fit."""
    shape = _shape_of(value, name)
    flat = []

    def walk(v):
        if isinstance(v, list):
            for item in v:
                walk(item)
        else:
            flat.append(_leaf(v, name, dtype))

    walk(value)
    if dtype == tf.string:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        array = array.reshape(shape)
    else:
        array = np.asarray(flat, dtype=dtype.as_numpy_dtype).reshape(shape)
    return array


def _shape_text(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape.as_list()) + "]"


def request_inputs(request: dict, specs: dict[str, tf.TensorSpec]) -> tuple[dict[str, np.ndarray], bool]:
    """The signature's inputs from a predict request; also whether it used the row format."""
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows == has_columns:  # other top-level keys are ignored, as TF Serving does
        raise BadRequest(f"Missing 'inputs' or 'instances' key (got keys {sorted(request)})" if not has_rows else
                         "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
    names = sorted(specs)
    if has_rows:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise BadRequest(f"JSON Value: {_preview(instances)} Expecting 'instances' to be an list/array")
        if not instances:
            raise BadRequest("No values in 'instances' array")
        named = all(isinstance(i, dict) and not _is_b64(i) for i in instances)
        if named:
            columns = {}
            for index, instance in enumerate(instances):
                if set(instance) != set(names):
                    raise BadRequest(f"Failed to process element: {index} of 'instances' list. JSON object keys "
                                     f"{sorted(instance)} must be equal to: {','.join(names)}")
            columns = {name: [instance[name] for instance in instances] for name in names}
        elif len(names) == 1:
            columns = {names[0]: instances}
        else:
            raise BadRequest(f"the signature has {len(names)} inputs {names}: each instance must be a JSON object "
                             "naming all of them.")
    else:
        inputs = request["inputs"]
        if isinstance(inputs, dict) and not _is_b64(inputs):
            missing = [name for name in names if name not in inputs]  # extra keys are ignored, as in TF Serving
            if missing:
                raise BadRequest(f"Missing named input: {missing[0]} in 'inputs' object (the signature's inputs "
                                 f"are {names}; got {sorted(inputs)}).")
            columns = inputs
        elif len(names) == 1:
            columns = {names[0]: inputs}
        else:
            raise BadRequest(f"the signature has {len(names)} inputs {names}: 'inputs' must be a JSON object "
                             "naming all of them.")
    arrays = {name: to_array(columns[name], name, specs[name]) for name in names}
    if has_rows:
        sizes = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise BadRequest(f"inputs have different batch sizes {sizes}; use the columnar 'inputs' format.")
    return arrays, has_rows


def _json_values(name: str, array: np.ndarray):
    """An output tensor as JSON values: strings as UTF-8 text, `*_bytes` outputs as {"b64": ...}; numbers stay a
    numpy array, which `dumps` writes without building a Python list."""
    if array.dtype == object or array.dtype.kind == "S":
        if name.endswith("_bytes"):
            encode = np.frompyfunc(lambda b: {"b64": base64.b64encode(b).decode("ascii")}, 1, 1)
        else:
            encode = np.frompyfunc(lambda b: b.decode("utf-8", errors="replace"), 1, 1)
        return encode(array).tolist() if array.ndim else encode(array)
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
        return _python_values(array)  # float16 and bfloat16 in their own shortest repr, which orjson lacks
    return array


def _python_values(array: np.ndarray):
    """A numeric array as nested Python numbers, floats as their shortest repr in the array's own precision."""
    if array.dtype.kind == "f" and array.dtype != np.float64:
        # Each value as its shortest float32 repr (0.1, not 0.10000000149011612): str() of a numpy float32
        # scalar gives that; TF Serving prints float32 the same way, with at most 9 digits.
        shortest = np.array([float(str(v)) for v in array.ravel()], dtype=np.float64).reshape(array.shape)
        return shortest.tolist()
    return array.tolist()


class _NonFinite(dict):
    """A response holding NaN or Infinity, which `dumps` writes with the json module (orjson writes null)."""


def response(outputs: dict[str, np.ndarray], row_format: bool, batch_size: int | None = None) -> dict:
    """The predict response: {"predictions": rows} for the row format, {"outputs": ...} for columnar."""
    values = {name: _json_values(name, array) for name, array in outputs.items()}
    finite = all(np.isfinite(a).all() for a in outputs.values() if a.dtype.kind == "f")
    answer = dict if finite else _NonFinite
    if not row_format:
        return answer(outputs=next(iter(values.values())) if len(values) == 1 else values)
    for name, array in outputs.items():
        if array.ndim == 0 or (batch_size is not None and array.shape[0] != batch_size):
            raise BadRequest(f"output {name!r} has shape {list(array.shape)}, not one row per instance "
                             f"({batch_size}); use the columnar 'inputs' format for this signature.")
    if len(values) == 1:
        return answer(predictions=next(iter(values.values())))
    names = sorted(values)
    rows = len(values[names[0]])
    return answer(predictions=[{name: values[name][i] for name in names} for i in range(rows)])


def _default(value):
    if isinstance(value, np.ndarray | np.generic):
        return _python_values(np.asarray(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(payload: dict) -> bytes:
    """JSON for a response body: UTF-8 text as it is, float32 in its shortest repr as TF Serving writes it
    (0.1, not 0.10000000149011612; exponents as in 1e-7), NaN and Infinity as TF Serving writes them.

    orjson writes numpy arrays directly, at several times the json module's speed; it writes NaN and Infinity
    as null, so an answer holding them (`response` marks it) goes through the json module instead.
    """
    if not isinstance(payload, _NonFinite):
        try:
            return orjson.dumps(payload, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # e.g. a dict key that is not a string
            pass
    return json.dumps(payload, allow_nan=True, ensure_ascii=False, separators=(",", ":"),
                      default=_default).encode("utf-8")
