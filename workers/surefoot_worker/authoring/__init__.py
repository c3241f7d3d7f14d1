"""Authoring workflow definitions: YAML/JSON files, Python modules and the `Workflow` builder.

All three compile to the same `WorkflowDefinition` protobuf message, which is what the control
plane stores and versions. The file shape is the protobuf JSON mapping (snake_case or camelCase
field names) with these conveniences: enums may be written as short lowercase names
(`idempotency: key`, `on_failure: compensate`, `compensate_idempotency: natural`), the input
schema may be written as an object (`input_schema:`) instead of a JSON string
(`input_schema_json:`), as may an ai node's `output_schema:` and a fallback's
`default_output:`, and a node kind with nothing after it (`approval:`) is that kind with
every field at its default, as `approval: {}` is.

- `_document.py`: a definition as a dict (the file shape) and back;
- `_files.py`: reading YAML and JSON files;
- `_builder.py`: `Workflow`, one method per node kind, and `model` for the ai nodes' connections;
- `_ai.py`: the ai node's JSON fields written as objects;
- `_loading.py`: `load_definitions`, from a file or a Python module.
"""

from surefoot.v1.definition_pb2 import WorkflowDefinition

from ._builder import SwitchCase, Workflow
from ._document import DefinitionFileError, definition_from_dict, definition_to_dict
from ._loading import load_definitions

__all__ = [
    "DefinitionFileError",
    "SwitchCase",
    "Workflow",
    "WorkflowDefinition",
    "definition_from_dict",
    "definition_to_dict",
    "load_definitions",
]
