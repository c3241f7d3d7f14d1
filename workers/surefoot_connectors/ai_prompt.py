"""The prompt of an ``ai`` node: its templates rendered in Jinja2's sandbox.

A template comes from a workflow definition and its variable from the run's data, so
neither may reach Python: the sandbox refuses attribute tricks (``__class__``, ``mro``) and
unsafe calls, and StrictUndefined makes a misspelt variable an error instead of an empty
string silently sent to the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

# One environment for every render: it caches nothing about a template's variables.
_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class PromptError(ValueError):
    """A template that does not parse or cannot be rendered with the input; says which."""


@dataclass(frozen=True)
class Prompt:
    """The rendered messages of a call."""

    system: str
    user: str

    @property
    def sha256(self) -> str:
        return prompt_sha256(self.system, self.user)

    def messages(self) -> list[dict[str, str]]:
        """The chat messages: the system message only when there is one."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": self.user})
        return messages


def prompt_sha256(system: str, user: str) -> str:
    """The hex sha256 of the rendered system message followed by the user message (UTF-8),
    what history keeps of a redacted prompt: equal prompts have equal hashes."""
    return hashlib.sha256((system + user).encode("utf-8")).hexdigest()


def render_prompt(system_template: str, user_template: str, value: Any) -> Prompt:
    """Render both templates with the variable ``input`` bound to `value`.

    Raises:
        PromptError: Naming the template (system_prompt or user_prompt) and the problem.
    """
    return Prompt(
        system=_render("system_prompt", system_template, value),
        user=_render("user_prompt", user_template, value),
    )


def _render(field: str, template: str, value: Any) -> str:
    if not template:
        return ""
    try:
        return _ENVIRONMENT.from_string(template).render(input=value)
    except TemplateError as exc:
        raise PromptError(f"{field}: {type(exc).__name__}: {exc}") from None
