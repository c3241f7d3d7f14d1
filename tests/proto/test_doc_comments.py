"""Every message, field, enum, enum value, oneof, service and RPC of every proto has a doc
comment: the protos are the contract integrators write clients and workers from."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
DOCUMENTED = (
    "approval.proto",
    "audit_service.proto",
    "common.proto",
    "credential_service.proto",
    "definition.proto",
    "operation_service.proto",
    "run.proto",
    "worker_admin_service.proto",
    "worker_service.proto",
    "workflow_service.proto",
)
NOT_YET: set[tuple[str, str]] = set()

# FileDescriptorProto field numbers, as SourceCodeInfo.Location paths use them.
MESSAGE, ENUM, SERVICE = 4, 5, 6
FIELD, NESTED, ENUM_IN_MESSAGE, ONEOF = 2, 3, 4, 8
VALUE = METHOD = 2


def descriptor_set(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "protos.pb"
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *(f"surefoot/v1/{name}" for name in DOCUMENTED),
    ]
    assert protoc.main(args) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def elements(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Source path -> a readable name, for every element that needs a comment."""
    found: dict[tuple[int, ...], str] = {}

    def enum(path: tuple[int, ...], e: descriptor_pb2.EnumDescriptorProto, prefix: str) -> None:
        found[path] = f"enum {prefix}{e.name}"
        for j, value in enumerate(e.value):
            found[(*path, VALUE, j)] = f"value {prefix}{e.name}.{value.name}"

    def message(path: tuple[int, ...], m: descriptor_pb2.DescriptorProto, prefix: str) -> None:
        name = f"{prefix}{m.name}"
        found[path] = f"message {name}"
        for j, field in enumerate(m.field):
            if not m.options.map_entry:
                found[(*path, FIELD, j)] = f"field {name}.{field.name}"
        for j, oneof in enumerate(m.oneof_decl):
            if not oneof.name.startswith("_"):  # proto3 `optional`: synthetic, no source
                found[(*path, ONEOF, j)] = f"oneof {name}.{oneof.name}"
        for j, nested in enumerate(m.nested_type):
            if not nested.options.map_entry:
                message((*path, NESTED, j), nested, f"{name}.")
        for j, nested_enum in enumerate(m.enum_type):
            enum((*path, ENUM_IN_MESSAGE, j), nested_enum, f"{name}.")

    for i, m in enumerate(file.message_type):
        message((MESSAGE, i), m, "")
    for i, e in enumerate(file.enum_type):
        enum((ENUM, i), e, "")
    for i, service in enumerate(file.service):
        found[(SERVICE, i)] = f"service {service.name}"
        for j, method in enumerate(service.method):
            found[(SERVICE, i, METHOD, j)] = f"rpc {service.name}.{method.name}"
    return found


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_element_has_a_doc_comment(tmp_path: Path, name: str) -> None:
    (file,) = [f for f in descriptor_set(tmp_path).file if f.name == f"surefoot/v1/{name}"]
    comments = {
        tuple(location.path): location.leading_comments.strip()
        for location in file.source_code_info.location
    }

    undocumented = [
        what
        for path, what in elements(file).items()
        if not comments.get(path) and (name, what.split(" ", 1)[1].split(".")[0]) not in NOT_YET
    ]

    assert undocumented == [], f"{name}: no doc comment on " + ", ".join(undocumented)
