"""`HistoryEvent.data` has a documented JSON shape per event type (run.proto, on each
EventType value: ``data: {key: type, optional?: type}``), and the code writes exactly that.

Every place that writes a history event is read here (the engine's `flow.record` calls, the
events built as `NewHistoryEvent`, the ATTEMPT_STARTED of a lease): each key it can write must
be documented for its type, and each documented key without ``?`` is written every time. A
new event type, or a new key, fails here until its documentation says what it is.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from surefoot.v1 import run_pb2

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto" / "surefoot" / "v1" / "run.proto"
SOURCES = [*sorted((REPO / "controlplane").rglob("*.py"))]
# Keyword arguments of `flow.record` that are columns of the event, not its data.
COLUMNS = {"principal"}
# `**name` spread into an event's data, and the keys each can bring (optional by nature).
SPREADS = {
    "started": set(),  # RUN_STARTED's own keyword arguments at each `new_run` call, below
    "duties": {"separation_of_duties"},
    "made_by": {"operation_id"},
    "_made_by": {"operation_id"},
    "extra": {"compensates"},
}


def documented() -> dict[str, tuple[set[str], set[str]]]:
    """Event type -> (keys always present, optional keys), from run.proto's comments."""
    text = PROTO.read_text()
    body = text[text.index("enum EventType {") :]
    body = body[: body.index("\n}")]
    shapes: dict[str, tuple[set[str], set[str]]] = {}
    comment: list[str] = []
    for line in body.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("//"):
            comment.append(stripped[2:].strip())
            continue
        found = re.match(r"EVENT_TYPE_(\w+)\s*=", stripped)
        if found and found.group(1) != "UNSPECIFIED":
            shapes[found.group(1)] = _shape(" ".join(comment), found.group(1))
        comment = []
    return shapes


def _shape(comment: str, kind: str) -> tuple[set[str], set[str]]:
    start = comment.find("data: {")
    assert start >= 0, f"EVENT_TYPE_{kind} documents no `data: {{...}}`"
    keys: set[str] = set()
    optional: set[str] = set()
    depth, token = 0, ""
    # Parenthesised remarks say when a key is there; they name no key.
    shape = re.sub(r"\([^()]*\)", "", comment[start + len("data: ") :])
    for char in shape:
        if char == "{":
            depth += 1
            continue
        if char == "}":
            depth -= 1
            if depth == 0:
                break
            continue
        if depth == 1 and char == ":":
            name = token.strip().split(",")[-1].strip().split()[-1] if token.strip() else ""
            if name:
                (optional if name.endswith("?") else keys).add(name.rstrip("?"))
            token = ""
            continue
        if depth == 1:
            token = "" if char == "," else token + char
    return keys, optional


def written() -> dict[str, list[tuple[set[str], set[str], str]]]:
    """Event type -> for each place writing it: (keys always written, keys maybe written,
    where)."""
    found: dict[str, list[tuple[set[str], set[str], str]]] = {}
    for path in SOURCES:
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            kind, always, maybe = _event_call(node)
            if kind is not None:
                found.setdefault(kind, []).append((always, maybe, where))
    return found


def _event_call(call: ast.Call) -> tuple[str | None, set[str], set[str]]:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = call.args[0] if call.args else None
    kind = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
    if name == "record" and kind and kind.isupper():
        always, maybe = set(), set()
        for keyword in call.keywords:
            if keyword.arg is None:
                maybe |= _spread(keyword.value)
            elif keyword.arg not in COLUMNS:
                always.add(keyword.arg)
        return kind, always, maybe
    if name == "NewHistoryEvent" and kind:
        data = next((k.value for k in call.keywords if k.arg == "data"), None)
        if isinstance(data, ast.Dict):
            return kind, {str(k.value) for k in data.keys if isinstance(k, ast.Constant)}, set()
    if name == "new_run":
        # RUN_STARTED's data: what `new_run` records, and what each caller adds.
        always, maybe = set(), set()
        for keyword in call.keywords:
            if keyword.arg is None:
                maybe |= _spread(keyword.value)
            elif keyword.arg == "forked_from" or keyword.arg == "comment":
                always.add(keyword.arg)
        return ("RUN_STARTED+", always, maybe) if always or maybe else (None, set(), set())
    return None, set(), set()


def _spread(value: ast.expr) -> set[str]:
    if isinstance(value, ast.Name):
        assert value.id in SPREADS, f"**{value.id} in an event's data: say what it brings"
        return SPREADS[value.id]
    keys: set[str] = set()
    for node in ast.walk(value):
        if isinstance(node, ast.Dict):
            keys |= {str(k.value) for k in node.keys if isinstance(k, ast.Constant)}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id in SPREADS, f"**{node.func.id}(...) in an event's data"
            keys |= SPREADS[node.func.id]
    return keys


def test_every_event_type_documents_its_data() -> None:
    shapes = documented()
    values = run_pb2.EventType.DESCRIPTOR.values
    names = {v.name.removeprefix("EVENT_TYPE_") for v in values} - {"UNSPECIFIED"}
    assert set(shapes) == names


def test_what_the_code_writes_is_what_is_documented() -> None:
    shapes = documented()
    places = written()
    run_started_extra = places.pop("RUN_STARTED+", [])
    problems = []
    for kind, writes in sorted(places.items()):
        assert kind in shapes, f"{kind} is written ({writes[0][2]}) but is no EventType"
        required, optional = shapes[kind]
        for always, maybe, where in writes:
            if kind == "RUN_STARTED":
                for extra_always, extra_maybe, _ in run_started_extra:
                    maybe = maybe | extra_always | extra_maybe
            undocumented = (always | maybe) - required - optional
            missing = required - always
            if undocumented:
                problems.append(f"{where}: {kind} writes undocumented {sorted(undocumented)}")
            if missing:
                problems.append(f"{where}: {kind} does not always write {sorted(missing)}")
    assert not problems, "\n".join(problems)
    # The lease's ATTEMPT_STARTED is built in the store (`run_batch._started`), checked
    # against this shape on a real control plane in test_attempt_started.
    assert "ATTEMPT_STARTED" not in places
