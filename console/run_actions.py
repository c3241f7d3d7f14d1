"""The operator's actions on one run, from its screen or its replay: each says what it will
do, takes a comment that the run's history records with it, and goes out with a request id
(console/run_client.py) so that sending it again after no answer acts once.

The server decides whether an action applies (a step that is not dead-lettered cannot be
retried, an ended run cannot be paused): its refusal is shown as it comes, one line, and
nothing is changed. What is checked here is only what needs no server: that a step is
selected, and that the JSON typed is JSON (in the editor, before anything is sent).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from surefoot.v1 import run_pb2

from console.action_prompt import ActionPrompt
from console.modals import JsonModal
from console.render import step_input
from console.render_ai import is_ai_review, output_draft
from console.run_details import (
    approval_id_at,
    error_of,
    status_name,
    step_status_name,
    value_of,
)
from console.trace import COMPENSATION_SUFFIX
from controlplane.audit.content import shown_hash

if TYPE_CHECKING:
    from textual.app import App

    from console.client import ControlPlane
    from console.run_client import RunClient

T = TypeVar("T")


class RunHost(Protocol):
    """What the actions need from the screen they run on."""

    app: App[Any]
    control_plane: ControlPlane
    client: RunClient
    run_id: str
    run: run_pb2.Run | None
    events: list[run_pb2.HistoryEvent]

    def say(self, message: str, severity: Any = "information") -> None: ...

    async def attempt(self, call: Awaitable[T], *, polling: bool = False) -> T | None: ...

    def refresh_now(self) -> None: ...

    @property
    def selected_node(self) -> str | None: ...


class RunActions:
    def __init__(self, host: RunHost) -> None:
        self.host = host

    # -- steps ------------------------------------------------------------------------------

    def _target_step(self) -> str | None:
        """The selected step, or the run's only dead letter when the run row is selected."""
        host = self.host
        node = host.selected_node
        if node is None and host.run is not None:
            dead = [
                s.node_id for s in host.run.steps if s.status == run_pb2.STEP_STATUS_DEAD_LETTERED
            ]
            if len(dead) == 1:
                node = dead[0]
        if node is None:
            host.say("select a step first (↑ ↓)", severity="warning")
        return node

    def _step_summary(self, node: str) -> str:
        step = self._step(node)
        if step is None:
            return f"step {node}"
        lines = [f"step {node}: {step_status_name(step.status)}, attempt {step.attempt}"]
        if error := error_of(step.last_error):
            lines.append(f"last error: {error['type']}: {error['message']}")
        return "\n".join(lines)

    def _step(self, node: str) -> run_pb2.Step | None:
        run = self.host.run
        if run is None:
            return None
        return next((step for step in run.steps if step.node_id == node), None)

    async def retry(self, edit: bool) -> None:
        host = self.host
        node = self._target_step()
        if node is None:
            return
        explanation = self._step_summary(node) + (
            "\nIt runs again with the same idempotency key and a fresh retry budget."
        )

        def ask_comment(edited: str | None) -> None:
            if edit and edited is None:
                return
            title = f"Retry {node} of run {host.run_id}" + (" with edited input" if edit else "")

            async def send(comment: str | None) -> None:
                if comment is None:
                    return
                call = host.client.retry_step(host.run_id, node, comment, edited)
                if (run := await host.attempt(call)) is not None:
                    self._done(f"retried {node}", run)

            host.app.push_screen(ActionPrompt(title, explanation), send)

        if edit:
            run = host.run or run_pb2.Run()
            initial = step_input(run, host.events, node)
            host.app.push_screen(JsonModal(f"input of {node} for the retry", initial), ask_comment)
        else:
            ask_comment(None)

    async def skip(self) -> None:
        host = self.host
        node = self._target_step()
        if node is None:
            return

        def ask_comment(output: str | None) -> None:
            if output is None:
                return

            async def send(comment: str | None) -> None:
                if comment is None:
                    return
                call = host.client.skip_step(host.run_id, node, output, comment)
                if (run := await host.attempt(call)) is not None:
                    self._done(f"skipped {node}", run)

            explanation = self._step_summary(node) + f"\nIt is taken as completed with {output}"
            host.app.push_screen(
                ActionPrompt(f"Skip {node} of run {host.run_id}", explanation), send
            )

        title = f"skip {node}: the output it is taken to have returned"
        host.app.push_screen(JsonModal(title, "{}"), ask_comment)

    # -- the run ----------------------------------------------------------------------------

    async def pause_or_resume(self) -> None:
        host = self.host
        run = host.run
        if run is not None and run.HasField("paused"):
            resume_note = (
                f"Paused by {run.paused.paused_by or '?'}"
                + (f" ({run.paused.reason})" if run.paused.reason else "")
                + ". Its waiting tasks are handed out again."
            )

            async def resume(reason: str | None) -> None:
                if reason is not None and (
                    done := await host.attempt(host.client.resume(host.run_id, reason))
                ):
                    self._done("resumed", done)

            prompt = ActionPrompt(
                f"Resume run {host.run_id}", resume_note, placeholder="why (recorded with it)"
            )
            host.app.push_screen(prompt, resume)
            return

        async def pause(reason: str | None) -> None:
            if reason is not None and (
                done := await host.attempt(host.client.pause(host.run_id, reason))
            ):
                self._done("paused", done)

        note = (
            "Attempts in flight finish; no new step starts until the run is resumed. "
            "Timers and approvals keep counting."
        )
        prompt = ActionPrompt(
            f"Pause run {host.run_id}", note, placeholder="why (recorded with the pause)"
        )
        host.app.push_screen(prompt, pause)

    async def cancel(self, compensate: bool) -> None:
        host = self.host
        if compensate:
            title = f"Abandon run {host.run_id}?"
            note = (
                "Open steps are cancelled, then the compensations of its completed steps run, "
                "newest first, and the run ends COMPENSATED. This cannot be undone."
            )
        else:
            title = f"Cancel run {host.run_id}?"
            note = (
                "Open steps are cancelled and the run ends CANCELLED, without compensating "
                "what it did. This cannot be undone."
            )

        async def send(reason: str | None) -> None:
            if reason is None:
                return
            call = host.client.cancel(host.run_id, reason, compensate)
            if (run := await host.attempt(call)) is not None:
                self._done("abandoned" if compensate else "cancelled", run)

        prompt = ActionPrompt(title, note, drastic=True, placeholder="why (recorded in history)")
        host.app.push_screen(prompt, send)

    async def fork(self, node: str | None, edit: bool, at_seq: int | None = None) -> None:
        """A new run from `node`: it reuses the outputs recorded before it and runs `node` and
        what follows again (new idempotency keys: a new business action)."""
        host = self.host
        if node is None:
            host.say("select the step to fork from (↑ ↓)", severity="warning")
            return
        if node.endswith(COMPENSATION_SUFFIX):
            undone = node.removesuffix(COMPENSATION_SUFFIX)
            host.say(f"{node} is a compensation: fork from {undone} instead", severity="warning")
            return
        where = f" (the event shown is seq {at_seq})" if at_seq else ""
        note = (
            f"A new run of the same workflow version starts at {node}{where}: the outputs its "
            f"steps recorded before {node} are reused, {node} and what follows run again with "
            "new idempotency keys. This run is not changed."
        )

        def ask_comment(edited: str | None) -> None:
            if edit and edited is None:
                return

            async def send(comment: str | None) -> None:
                if comment is None:
                    return
                call = host.client.fork(host.run_id, node, comment, edited)
                if (answer := await host.attempt(call)) is None:
                    return
                reused = ", ".join(answer.reused_nodes) or "nothing"
                host.say(f"forked {host.run_id} from {node} as {answer.run.id} (reused {reused})")
                # Imported here: the run screen imports this module.
                from console.screens.run import RunScreen

                host.app.push_screen(RunScreen(host.control_plane, answer.run.id))

            title = f"Fork run {host.run_id} from {node}" + (" with edited input" if edit else "")
            host.app.push_screen(ActionPrompt(title, note), send)

        if edit:
            run_input = value_of(host.run.input) if host.run is not None else None
            initial = json.dumps(
                run_input if run_input is not None else {}, indent=2, sort_keys=True
            )
            host.app.push_screen(JsonModal("input of the forked run", initial), ask_comment)
        else:
            ask_comment(None)

    async def decide(self, approve: bool) -> None:
        host = self.host
        run = host.run
        approval_id = approval_id_at(run, host.selected_node) if run is not None else None
        node = host.selected_node
        reviewed = run is not None and node is not None and is_ai_review(run, host.events, node)
        if approval_id is None and run is not None and reviewed:
            # A review's blocked-on may not name its approval; its id is "<run>:<node>".
            approval_id = f"{run.id}:{node}"
        if approval_id is None:
            host.say("no pending approval at the selected step", severity="warning")
            return
        approval = await host.attempt(host.client.approval(approval_id))
        if approval is None:
            return
        if approve and is_ai_review(run, host.events, approval.node_id):
            self._approve_with_output(approval)
            return
        shown = json.dumps(value_of(approval.shown), indent=2, sort_keys=True)
        verb = "Approve" if approve else "Reject"
        note = f"{approval.title}\nyou are shown:\n{shown}"

        async def send(comment: str | None) -> None:
            if comment is None:
                return
            call = host.client.decide(approval_id, approve, comment, shown_hash(approval))
            if (decided := await host.attempt(call)) is not None:
                done = "approved" if approve else "rejected"
                host.say(f"{done} {approval_id} as {decided.decided_by or '?'}")
                host.refresh_now()

        host.app.push_screen(ActionPrompt(f"{verb} {approval_id}", note), send)

    def _approve_with_output(self, approval: Any) -> None:
        """An `ai` step's review is approved with the output the step takes (the server
        checks it against the node's schema)."""
        host = self.host

        async def send(output: str | None) -> None:
            if output is None:
                return
            call = host.client.decide(approval.id, True, "", shown_hash(approval), output)
            if (decided := await host.attempt(call)) is not None:
                host.say(f"approved {approval.id} with an output as {decided.decided_by or '?'}")
                host.refresh_now()

        title = f"Approve {approval.id} with the output of {approval.node_id} (JSON)"
        draft = output_draft(value_of(approval.shown))
        host.app.push_screen(JsonModal(title, draft), send)

    async def again(self) -> None:
        host = self.host
        pending = host.client.unanswered
        if pending is None:
            host.say("no action is waiting for an answer", severity="warning")
            return
        answer = await host.attempt(host.client.again())
        if answer is not None:
            description, _ = answer
            request_id = getattr(pending.request, "request_id", "")
            host.say(f"{description}: answered (request id {request_id})")
            host.refresh_now()

    def _done(self, what: str, run: run_pb2.Run) -> None:
        self.host.say(f"{what} {run.id}: {status_name(run.status)}")
        self.host.refresh_now()
