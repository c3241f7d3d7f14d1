"""What `/` types: free text and `status:`, `workflow:`, `step:` terms.

    /acme status:needs_attention workflow:checkout@2 step:charge-card

Terms narrow what the server is asked for (each screen maps those it can: runs by status and
workflow, dead letters by workflow and step type); the rest is free text, matched
case-insensitively against the cells of the rows shown. A word with a colon that is not one
of the terms ("HTTP 503 at 12:00") is free text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TERMS = ("status", "workflow", "step")


@dataclass(frozen=True)
class Query:
    text: str = ""
    statuses: tuple[str, ...] = ()  # upper case, as the API names them: NEEDS_ATTENTION
    workflow: str = ""  # a name, or name@version
    step: str = ""

    @property
    def empty(self) -> bool:
        return self == Query()

    @property
    def workflow_name(self) -> str:
        return self.workflow.partition("@")[0]

    @property
    def workflow_version(self) -> str:
        return self.workflow.partition("@")[2]

    def matches(self, cells: Iterable[str]) -> bool:
        """Whether a row's cells hold the free text (every word of it, anywhere)."""
        if not self.text:
            return True
        line = " ".join(cells).lower()
        return all(word in line for word in self.text.lower().split())

    def __str__(self) -> str:
        parts = [self.text] if self.text else []
        if self.statuses:
            parts.append("status:" + ",".join(s.lower() for s in self.statuses))
        if self.workflow:
            parts.append(f"workflow:{self.workflow}")
        if self.step:
            parts.append(f"step:{self.step}")
        return " ".join(parts)


def parse_query(typed: str) -> Query:
    """The query an operator typed after `/`.

    Raises:
        ValueError: a term without a value ("status:").
    """
    words: list[str] = []
    statuses: list[str] = []
    found: dict[str, str] = {}
    for word in typed.split():
        term, colon, value = word.partition(":")
        if not colon or term.lower() not in TERMS:
            words.append(word)
            continue
        if not value:
            raise ValueError(f"{term}: needs a value, e.g. {_EXAMPLES[term.lower()]}")
        if term.lower() == "status":
            statuses += [s.strip().upper().replace("-", "_") for s in value.split(",") if s]
        else:
            found[term.lower()] = value
    return Query(
        text=" ".join(words),
        statuses=tuple(statuses),
        workflow=found.get("workflow", ""),
        step=found.get("step", ""),
    )


_EXAMPLES = {
    "status": "status:needs_attention,waiting",
    "workflow": "workflow:checkout or workflow:checkout@2",
    "step": "step:charge-card",
}
