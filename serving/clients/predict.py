"""Calls a model with Python `requests`: TF Serving's REST API (real or embedded) or the middleware.

    python serving/clients/predict.py http://127.0.0.1:8501/v1/models/cnn_vision --image shoe.png
    python serving/clients/predict.py http://127.0.0.1:8501/v1/models/word2vec_lstm/labels/stable --text "..."
    python serving/clients/predict.py http://127.0.0.1:8080/v1/classify/cnn_vision --image shoe.png

A TF Serving URL gets {"signature_name": ..., "instances": [...]} (images as {"b64": ...} to the
`serving_bytes` signature); a middleware URL (/v1/classify/NAME) gets a multipart upload or
{"texts": [...]}. Prints the top labels with scores, one line per input (--json for the raw answer).
Needs only `requests`; runs outside this repo.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

import requests


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build_request(url: str, images: list[str], texts: list[str], signature_name: str | None) -> dict:
    """Keyword arguments of requests.post for the API the URL points at."""
    if "/v1/classify/" in url:
        if images:
            return {"url": url, "files": [("image", (os.path.basename(path), _read(path))) for path in images]}
        return {"url": url, "json": {"texts": texts}}
    if images:
        instances = [{"b64": base64.b64encode(_read(path)).decode("ascii")} for path in images]
    else:
        instances = texts
    signature = signature_name or ("serving_bytes" if images else "serving_default")
    return {"url": url.rstrip("/") + ":predict", "json": {"signature_name": signature, "instances": instances}}


def top_labels(answer: dict, top_k: int) -> list[str]:
    """One line per input: 'label score, label score, ...' from either API's answer."""
    lines = []
    for prediction in answer["predictions"]:
        if isinstance(prediction, dict) and "top_k" in prediction:  # the middleware has ranked them already
            pairs = [(p["label"], p["score"]) for p in prediction["top_k"]]
        elif isinstance(prediction, dict) and {"label_names", "probabilities"} <= set(prediction):
            pairs = sorted(zip(prediction["label_names"], prediction["probabilities"]), key=lambda p: -p[1])
        else:
            pairs = [(json.dumps(prediction), 1.0)]
        lines.append(", ".join(f"{label} {score:.3f}" for label, score in pairs[:top_k]))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Sends the request, prints the answer; exit code 1 on an HTTP error, 2 on a bad argument."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="http://HOST:8501/v1/models/NAME[/versions/N|/labels/L] or "
                                    "http://HOST:8080/v1/classify/NAME")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--image", action="append", default=[], help="an image file; repeat for a batch")
    inputs.add_argument("--text", action="append", default=[], help="a text; repeat for a batch")
    parser.add_argument("--signature_name", help="default: serving_bytes for images, serving_default for text")
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the server's JSON answer as it is")
    args = parser.parse_args(argv)
    try:
        request = build_request(args.url, args.image, args.text, args.signature_name)
    except OSError as e:
        print(f"predict.py: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        response = requests.post(timeout=args.timeout, **request)
    except requests.RequestException as e:
        print(f"predict.py: {request['url']}: {e}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text[:500]}
    if response.status_code != 200:
        print(f"predict.py: HTTP {response.status_code}: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=1))
    else:
        for name, line in zip(args.image or args.text, top_labels(answer, args.top_k)):
            print(f"{name[:60]}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
