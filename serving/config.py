"""TF Serving's own config files, read with its protos: the model config and the batching parameters.

The same text-proto files drive real TensorFlow Serving (serving/docker/) and the embedded server,
so a config tested here is a config TF Serving accepts.

    python -m serving.config serving/docker/models.config --compose_file=serving/docker/docker-compose.yml

checks that the file parses and that every model it names has the versions it asks for, on this
machine's side of the compose file's volume mounts; with --core_ops_only, also that those exports use no
op outside core TensorFlow (what the stock tensorflow/serving image can run).
"""

from __future__ import annotations

import os
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

ModelConfig = model_server_config_pb2.ModelConfig


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file and what is wrong."""


def _parse(path: str, message):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigFileError(f"cannot read {path}: {e.strerror}") from e
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:  # "3:5 : Message type ... has no field named ..."
        raise ConfigFileError(f"{path}:{e}") from e


def read_model_configs(path: str, resolve_relative: bool = True) -> list[ModelConfig]:
    """The models of a ModelServerConfig text file (`model_config_list { config { ... } }`), validated.

    TF Serving wants absolute base paths; the embedded server also takes paths relative to the config
    file's folder (`resolve_relative`), so a checked-in config works from any working directory.
    """
    server_config = _parse(path, model_server_config_pb2.ModelServerConfig())
    if server_config.WhichOneof("config") != "model_config_list":
        raise ConfigFileError(f"{path}: expected a `model_config_list {{ config {{ ... }} }}` block.")
    configs = list(server_config.model_config_list.config)
    if not configs:
        raise ConfigFileError(f"{path}: model_config_list has no `config` entries.")
    names = [c.name for c in configs]
    for config in configs:
        where = f"{path}: model {config.name!r}"
        if not config.name or not config.base_path:
            raise ConfigFileError(f"{path}: every config needs a `name` and a `base_path` (got {config.name!r}).")
        if config.model_platform not in ("", "tensorflow"):
            raise ConfigFileError(f"{where}: model_platform {config.model_platform!r}; only 'tensorflow' is served.")
        if names.count(config.name) > 1:
            raise ConfigFileError(f"{where} is listed twice.")
        wanted = required_versions(config)
        for label, version in config.version_labels.items():
            if wanted is not None and version not in wanted:
                raise ConfigFileError(f"{where}: label {label!r} points at version {version}, which the "
                                      f"version policy does not serve (it serves {sorted(wanted)}).")
    if resolve_relative:
        for config in configs:
            config.base_path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), config.base_path))
    return configs


def single_model_config(name: str, base_path: str) -> ModelConfig:
    """What `--model_name=NAME --model_base_path=PATH` means: the newest version of one model."""
    return ModelConfig(name=name, base_path=os.path.abspath(base_path), model_platform="tensorflow")


def required_versions(config: ModelConfig) -> set[int] | None:
    """The version numbers a `specific` policy asks for; None for `latest` and `all`."""
    policy = config.model_version_policy
    return set(policy.specific.versions) if policy.WhichOneof("policy_choice") == "specific" else None


def choose_versions(config: ModelConfig, available: list[int]) -> set[int]:
    """The versions the policy serves, given the loadable ones on disk (TF Serving's default: the latest)."""
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(available)
    if choice == "specific":
        return set(available) & set(policy.specific.versions)
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions else 1
    return set(sorted(available)[-count:])


def _batching_parameters_class():
    """TF Serving's BatchingParameters message (session_bundle_config.proto), declared field by field.

    The tensorflow-serving-api package ships the API and config protos but not this one, so its fields
    (names, numbers and types as TF Serving defines them) are declared here in a private descriptor pool.
    """
    file = descriptor_pb2.FileDescriptorProto(name="serving/batching_parameters.proto", package="tensorflow.serving",
                                              syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapper, int64, boolean = field.TYPE_MESSAGE, field.TYPE_INT64, field.TYPE_BOOL
    for name, number, kind, type_name in (
            ("max_batch_size", 1, wrapper, "Int64Value"), ("batch_timeout_micros", 2, wrapper, "Int64Value"),
            ("max_enqueued_batches", 3, wrapper, "Int64Value"), ("num_batch_threads", 4, wrapper, "Int64Value"),
            ("thread_pool_name", 5, wrapper, "StringValue"), ("allowed_batch_sizes", 6, int64, ""),
            ("pad_variable_length_inputs", 7, boolean, ""), ("enable_large_batch_splitting", 8, wrapper, "BoolValue"),
            ("max_execution_batch_size", 9, wrapper, "Int64Value")):
        label = field.LABEL_REPEATED if name == "allowed_batch_sizes" else field.LABEL_OPTIONAL
        message.field.add(name=name, number=number, type=kind, label=label,
                          type_name=f".google.protobuf.{type_name}" if type_name else None)
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


def read_batching_parameters(path: str):
    """A BatchingParameters text file, as given to TF Serving's --batching_parameters_file."""
    params = _parse(path, BatchingParameters())
    for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
        if params.HasField(field) and getattr(params, field).value < 1:
            raise ConfigFileError(f"{path}: {field} must be at least 1, got {getattr(params, field).value}.")
    if params.HasField("batch_timeout_micros") and params.batch_timeout_micros.value < 0:
        raise ConfigFileError(f"{path}: batch_timeout_micros must not be negative.")
    sizes = list(params.allowed_batch_sizes)
    if sizes and (sizes != sorted(sizes) or sizes[-1] != params.max_batch_size.value):
        raise ConfigFileError(f"{path}: allowed_batch_sizes must increase and end at max_batch_size "
                              f"({params.max_batch_size.value}); got {sizes}.")
    return params


def host_path(container_path: str, mounts: dict[str, str]) -> str:
    """The host path behind a container path, given compose volume mounts {container: host}."""
    for target, source in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if container_path == target:  # a mounted file (or folder) itself
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return os.path.join(source, os.path.relpath(container_path, target))
    return container_path


def compose_mounts(compose_file: str, service: str) -> dict[str, str]:
    """The bind mounts of one docker-compose service as {container path: absolute host path}."""
    import yaml  # test/check-only dependency: the servers never read compose files

    try:
        with open(compose_file) as f:
            compose = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigFileError(f"cannot read {compose_file}: {e}") from e
    try:
        volumes = compose["services"][service].get("volumes", [])
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigFileError(f"{compose_file}: no service {service!r}.") from e
    mounts = {}
    for volume in volumes:
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        mounts[target] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(compose_file)), source))
    return mounts


def versions_on_disk(base: str) -> list[int]:
    """The version folders under `base` that hold a saved_model.pb, ascending."""
    if not os.path.isdir(base):
        return []
    return sorted(int(v) for v in os.listdir(base)
                  if v.isdigit() and os.path.isfile(os.path.join(base, v, "saved_model.pb")))


def missing_exports(configs: list[ModelConfig], mounts: dict[str, str] | None = None) -> list[str]:
    """What a config asks for that is not on disk: one line per model whose versions are absent."""
    problems = []
    for config in configs:
        base = host_path(config.base_path, mounts or {})
        found = versions_on_disk(base)
        wanted = required_versions(config)
        absent = sorted(wanted - set(found)) if wanted is not None else ([] if found else ["any"])
        if absent:
            problems.append(f"model {config.name!r}: no SavedModel for version(s) {absent} under {base}")
    return problems


def served_version_dirs(config: ModelConfig, mounts: dict[str, str] | None = None) -> list[str]:
    """The version folders on disk that `config`'s policy serves (host paths)."""
    base = host_path(config.base_path, mounts or {})
    return [os.path.join(base, str(v)) for v in sorted(choose_versions(config, versions_on_disk(base)))]


def ops_outside_core_tensorflow(export_dir: str) -> set[str]:
    """The ops of a SavedModel (its graph and function library) that core TensorFlow does not register:
    custom ops, such as tensorflow_text's, which the stock tensorflow/serving image cannot run. Meaningful
    only in a process that has not imported a custom-op library (this module's command line does not)."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return {op for op in ops if op_def_registry.get(op) is None}


def main(argv: list[str]) -> int:
    """Checks a model config (and optionally its compose mounts); prints what it serves."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_config_file")
    parser.add_argument("--compose_file", help="map container paths to host paths with this compose file")
    parser.add_argument("--service", default="tensorflow-serving")
    parser.add_argument("--batching_parameters_file")
    parser.add_argument("--core_ops_only", action="store_true",
                        help="also check that every served export uses core TensorFlow ops only, as the stock "
                             "tensorflow/serving image needs (no tensorflow_text ops)")
    args = parser.parse_args(argv)
    try:
        configs = read_model_configs(args.model_config_file, resolve_relative=not args.compose_file)
        mounts = compose_mounts(args.compose_file, args.service) if args.compose_file else {}
        if args.batching_parameters_file:
            read_batching_parameters(args.batching_parameters_file)
    except ConfigFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for config in configs:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(config.version_labels.items())) or "none"
        policy = config.model_version_policy.WhichOneof("policy_choice") or "latest"
        print(f"{config.name}: {host_path(config.base_path, mounts)} (policy {policy}, labels {labels})")
    problems = missing_exports(configs, mounts)
    if args.core_ops_only:
        for config in configs:
            for export_dir in served_version_dirs(config, mounts):
                custom = ops_outside_core_tensorflow(export_dir)
                if custom:
                    problems.append(f"model {config.name!r}: {export_dir} uses ops that are not core TensorFlow "
                                    f"({', '.join(sorted(custom))}); serve it with the embedded server's image "
                                    "(serving/docker/Dockerfile.server), not stock TF Serving")
    for problem in problems:
        print(f"error: {args.model_config_file}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
