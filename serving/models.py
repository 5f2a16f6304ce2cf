"""Models and their versions, loaded from TF Serving's directory layout and kept in step with the disk.

    <base_path>/<version>/saved_model.pb (+ variables/, assets/)

Every `poll()` lists the all-digit folders under each base path, lets the model's version policy pick
which to serve, loads the new ones and unloads the rest, as TF Serving's file system source does.
A version is loaded only when it holds a saved_model.pb, its files have not changed since the previous
poll and none of them was created or changed in the last `settle_seconds`, so a folder that is still
being copied in is not loaded half-written. A copy that stalls for longer is tried, fails to load and
is reported in the status (state END with the error, never served), then tried again once its files
change. A new version is loaded before an old one is dropped, and one that fails to load drops none, so
the model never goes unavailable. Versions whose folders are deleted leave the status.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

# Registers tensorflow_text's ops (SentencePiece, WordPiece) so exports that tokenize in the graph, such as
# projects/transformer's, load here. The stock tensorflow/serving image lacks them.
import tensorflow_text  # noqa: F401
from absl import logging
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from . import config as serving_config


class NotFound(LookupError):
    """An unknown model or version: HTTP 404."""


class UnknownLabel(ValueError):
    """A label the model config does not define: HTTP 400, as in TF Serving."""


class SavedModelVersion:
    """One loaded version: its signatures as callables, and their SignatureDefs for the metadata API."""

    def __init__(self, name: str, number: int, path: str):
        self.name, self.number, self.path = name, number, path
        self._loaded = tf.saved_model.load(path)
        self.signatures = dict(self._loaded.signatures)
        if not self.signatures:
            raise ValueError(f"{path} has no serving signatures.")
        self._metadata = self._read_signature_defs(path)

    def input_specs(self, signature_name: str) -> dict[str, tf.TensorSpec]:
        """The named inputs of a signature, e.g. {'images': TensorSpec([None, 28, 28, 1], tf.uint8)}."""
        return dict(self.signatures[signature_name].structured_input_signature[1])

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calls a signature on numpy inputs; returns numpy outputs."""
        outputs = self.signatures[signature_name](**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    def signature_def_map(self) -> dict:
        """The SignatureDefMap as TF Serving's metadata API writes it (proto JSON)."""
        return self._metadata

    @staticmethod
    def _read_signature_defs(path: str) -> dict:
        """Read at load time, so the metadata stays right if the folder is later replaced."""
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in proto.meta_graphs[0].signature_def.items():
            if not key.startswith("__"):  # __saved_model_init_op is internal
                defs.signature_def[key].CopyFrom(signature)
        return json_format.MessageToDict(defs, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)


@dataclass
class VersionState:
    """What the status API reports for one version, and the loaded servable when it is AVAILABLE."""

    number: int
    state: str = "START"        # START, LOADING, AVAILABLE, UNLOADING, END (TF Serving's ModelVersionStatus)
    error: str = ""
    fingerprint: tuple = ()
    servable: SavedModelVersion | None = None


def _fingerprint(path: str) -> tuple[tuple, float]:
    """Every file under a version folder with its size and times, and the newest inode change time.

    The change time (ctime) moves whenever a file is created, written or renamed here, even when a copy
    keeps the source's modification time, so it tells how long ago the folder last changed.
    """
    entries, newest = [], 0.0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:  # deleted while listing: not settled
                return ("changing",), time.time()
            entries.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns,
                            stat.st_ctime_ns))
            newest = max(newest, stat.st_ctime)
    return tuple(sorted(entries)), newest


class Model:
    """One model name: its base path, version policy, labels, and the versions in each state."""

    def __init__(self, config: serving_config.ModelConfig, settle_seconds: float = 1.0):
        self.config = config
        self.settle_seconds = settle_seconds
        self.name = config.name
        self.base_path = config.base_path
        self._lock = threading.Lock()
        self._versions: dict[int, VersionState] = {}
        self._seen: dict[int, tuple] = {}  # fingerprint at the previous poll, per version on disk

    def _on_disk(self) -> dict[int, str]:
        if not os.path.isdir(self.base_path):
            return {}
        # Folder names, not rebuilt from the number: TF Serving also serves "00000123" as version 123.
        return {int(name): os.path.join(self.base_path, name) for name in os.listdir(self.base_path)
                if name.isdigit() and os.path.isdir(os.path.join(self.base_path, name))}

    def poll(self, first: bool = False) -> None:
        """Brings the loaded versions in line with the disk and the version policy."""
        on_disk = self._on_disk()
        ready = {}
        for number, path in on_disk.items():
            known = self._versions.get(number)
            if known is not None and known.state == "AVAILABLE":
                continue  # serving already: no need to walk its files every poll
            if not os.path.isfile(os.path.join(path, "saved_model.pb")):
                continue
            fingerprint, changed = _fingerprint(path)
            quiet = time.time() - changed >= self.settle_seconds
            settled = quiet and (first or self._seen.get(number) == fingerprint)
            self._seen[number] = fingerprint
            failed_same = known is not None and known.error and known.fingerprint == fingerprint
            if settled and not failed_same:
                ready[number] = (path, fingerprint)
        self._seen = {n: f for n, f in self._seen.items() if n in on_disk}
        loaded = set(self.available())
        wanted = serving_config.choose_versions(self.config, sorted(set(ready) | (loaded & set(on_disk))))
        for number in sorted(wanted - loaded):
            if number in ready:
                self._load(number, *ready[number])
        # Choose again among the versions that serve now, so one that failed to load displaces none: as in
        # TF Serving, the old versions keep serving until their successors are AVAILABLE.
        loaded = set(self.available())
        keep = serving_config.choose_versions(self.config, sorted(loaded & set(on_disk)))
        for number in sorted(loaded - keep):
            self._unload(number)
        with self._lock:  # a deleted folder leaves the status too
            self._versions = {n: v for n, v in self._versions.items() if n in on_disk}

    def _load(self, number: int, path: str, fingerprint: tuple) -> None:
        state = VersionState(number, "LOADING", fingerprint=fingerprint)
        with self._lock:
            self._versions[number] = state
        logging.info("Loading %s version %d from %s", self.name, number, path)
        try:
            servable = SavedModelVersion(self.name, number, path)
        except Exception as e:  # noqa: BLE001 - any load failure is reported in the status, serving goes on
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            logging.error("Failed to load %s version %d from %s: %s", self.name, number, path, message)
            with self._lock:
                state.state, state.error = "END", f"Failed to load {path}: {message}"
            return
        with self._lock:
            state.servable, state.state = servable, "AVAILABLE"
        print(f"Serving {self.name} version {number} from {path}", flush=True)

    def _unload(self, number: int) -> None:
        with self._lock:
            state = self._versions[number]
            state.servable, state.state = None, "END"
        logging.info("Unloaded %s version %d", self.name, number)
        print(f"Unloaded {self.name} version {number}", flush=True)

    def available(self) -> list[int]:
        """The version numbers being served now."""
        with self._lock:
            return sorted(n for n, v in self._versions.items() if v.state == "AVAILABLE")

    def _labelled(self, version: int | None, label: str | None) -> int | None:
        """The version a label stands for (the config's version_labels), else `version` itself."""
        if label is None:
            return version
        if label not in self.config.version_labels:
            raise UnknownLabel(f"Unrecognized servable version label: {label}")
        return self.config.version_labels[label]

    def resolve(self, version: int | None = None, label: str | None = None) -> SavedModelVersion:
        """The servable for a request: a given version, a labelled one, or the newest available."""
        with self._lock:
            available = {n: v.servable for n, v in self._versions.items() if v.state == "AVAILABLE"}
        version = self._labelled(version, label)
        if version is None:
            if not available:
                raise NotFound(f"Servable not found for request: Latest({self.name})")
            return available[max(available)]
        if version not in available:
            raise NotFound(f"Servable not found for request: Specific({self.name}, {version})")
        return available[version]

    def status(self, version: int | None = None, label: str | None = None) -> dict:
        """GetModelStatusResponse as JSON: every known version, or the one asked for."""
        version = self._labelled(version, label)
        with self._lock:  # state and error change together under the lock
            states = [{"version": str(v.number), "state": v.state,
                       "status": {"error_code": "UNKNOWN" if v.error else "OK", "error_message": v.error}}
                      for v in sorted(self._versions.values(), key=lambda v: -v.number)
                      if version is None or v.number == version]
        if not states:
            raise NotFound(f"Could not find version {version} of model {self.name}" if version is not None
                           else f"Could not find any versions of model {self.name}")
        return {"model_version_status": states}


class ModelRegistry:
    """All served models by name, with a background thread that polls their base paths."""

    def __init__(self, configs: list[serving_config.ModelConfig], poll_seconds: float = 1.0,
                 settle_seconds: float = 1.0):
        self.models = {config.name: Model(config, settle_seconds) for config in configs}
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = None

    def get(self, name: str) -> Model:
        """The model called `name`, or NotFound as TF Serving words it."""
        if name not in self.models:
            raise NotFound(f"Servable not found for request: Latest({name})")
        return self.models[name]

    def poll(self, first: bool = False) -> None:
        """One pass over every model's base path."""
        for model in self.models.values():
            model.poll(first=first)

    def start(self) -> None:
        """Loads what is on disk now, then polls every `poll_seconds` (0: never) in a daemon thread."""
        self.poll(first=True)
        if any(not model.available() for model in self.models.values()):
            time.sleep(self.settle_seconds)  # an export written just now: let it settle, then look again
            self.poll(first=True)
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="version-poller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a broken poll must not stop the poller
                logging.exception("Polling the model base paths failed; trying again.")

    def stop(self) -> None:
        """Ends the polling thread."""
        self._stop.set()
