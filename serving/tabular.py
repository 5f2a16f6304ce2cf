"""Rows of column values for tabular models: read from JSON, matched to a signature, typed by its inputs.

    {"temp": 0.3, "hr": 8, "mnth": "Jan"}              one row
    {"rows": [{"temp": 0.3, ...}, {"temp": 0.5, ...}]} a batch; every row with the same columns

A tabular export takes one 1-D `[batch]` input per column (serving/README.md, the export contract), so
a row goes to TF Serving's row format as it is, once each value has the input's type: JSON from a
browser or a spreadsheet often sends "8" for 8, or 8 for the string "8". Only the standard library:
the middleware's Docker image has no TensorFlow.
"""

from __future__ import annotations

import json
import math
import re


class RowError(ValueError):
    """Rows the model cannot take: answered with HTTP 400 and this message."""


# Integer dtypes of the metadata (TF Serving writes DataType enum names) with their ranges.
_INT_RANGES = {f"DT_{'U' if unsigned else ''}INT{bits}": (0, 2**bits - 1) if unsigned else
               (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64) for unsigned in (False, True)}
_FLOATS = {"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"}
_DIGITS = re.compile(r"\s*[+-]?[0-9]+\s*")


def read_rows(body: dict) -> list[dict]:
    """The rows of a request: {"rows": [{...}, ...]} or one row {column: value, ...}."""
    if list(body) != ["rows"]:
        if not body:
            raise RowError("an empty JSON object: send the column values of one row, {\"column\": value, ...}, "
                           'or {"rows": [{...}, ...]}.')
        return [body]
    rows = body["rows"]
    if not isinstance(rows, list) or not rows:
        raise RowError(f'"rows" must be a non-empty list of objects of column values, got {_preview(rows)}.')
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RowError(f'"rows"[{index}] must be an object of column values, got {_preview(row)}.')
        if set(row) != set(rows[0]):
            raise RowError(f'every row needs the same columns: "rows"[{index}] lacks '
                           f"{sorted(set(rows[0]) - set(row))} and adds {sorted(set(row) - set(rows[0]))} "
                           'compared with "rows"[0].')
    return rows


def choose_signature(signatures: dict, columns: list[str]) -> str:
    """The signature whose input names are exactly the columns, serving_default first."""
    order = sorted(signatures, key=lambda name: (name != "serving_default", name))
    for name in order:
        if set(signatures[name].get("inputs", {})) == set(columns):
            return name
    if not order:
        raise RowError("this model has no signatures.")

    def mismatch(name):
        return len(set(signatures[name].get("inputs", {})) ^ set(columns))

    closest = min(order, key=mismatch)  # min keeps the first of equals: serving_default wins ties
    inputs = signatures[closest].get("inputs", {})
    problems = [f"{label} {names}" for label, names in (("missing columns", sorted(set(inputs) - set(columns))),
                                                        ("unknown columns", sorted(set(columns) - set(inputs))))
                if names]
    expects = ", ".join(f"{name} ({_type_name(inputs[name].get('dtype'))})" for name in sorted(inputs))
    raise RowError(f'the columns match no signature of this model; the closest, "{closest}", has '
                   f"{'; '.join(problems)}. It expects: {expects}.")


def typed_rows(rows: list[dict], inputs: dict, batched: bool) -> list[dict]:
    """The rows with every value converted to its input's dtype (from the signature's metadata)."""
    return [{column: _typed(value, inputs[column].get("dtype", ""), column, index if batched else None)
             for column, value in row.items()} for index, row in enumerate(rows)]


def _typed(value, dtype: str, column: str, index: int | None):
    """One value as the dtype wants it: int, float or str; anything else is passed on for the server to check."""
    if isinstance(value, list | dict) or value is None:
        raise _value_error(value, dtype, column, index)
    if dtype == "DT_STRING":
        return value if isinstance(value, str) else json.dumps(value)  # 8 -> "8", true -> "true"
    if isinstance(value, bool):  # a JSON true is not a number, although Python's bool is an int
        raise _value_error(value, dtype, column, index)
    if dtype in _INT_RANGES:
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            value = int(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        low, high = _INT_RANGES[dtype]
        if not isinstance(value, int) or not low <= value <= high:
            raise _value_error(value, dtype, column, index)
        return value
    if dtype in _FLOATS:
        try:
            number = float(value)  # numbers and numeric strings ("0.3", "1e-3")
        except (ValueError, OverflowError) as e:
            raise _value_error(value, dtype, column, index) from e
        if not math.isfinite(number):  # JSON cannot carry nan or inf on to the model server
            raise _value_error(value, dtype, column, index)
        return number
    return value


def _value_error(value, dtype: str, column: str, index: int | None) -> RowError:
    where = f"row {index}, column {column!r}" if index is not None else f"column {column!r}"
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        wanted = f"a whole number in [{low}, {high}] or a string of digits"
    else:
        wanted = "a number or a numeric string" if dtype in _FLOATS else "a string, number or boolean"
    return RowError(f"{where}: got {_preview(value)}; expected {wanted} ({_type_name(dtype)}).")


def _type_name(dtype: str | None) -> str:
    """DT_INT64 -> int64, as tf.DType names it."""
    return (dtype or "unknown dtype").removeprefix("DT_").lower()


def _preview(value, limit: int = 60) -> str:
    text = json.dumps(value, allow_nan=True)
    return text if len(text) <= limit else text[:limit] + "..."

