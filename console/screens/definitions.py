"""Definitions: every workflow version, its runs in flight, a diff of two, deprecation.

`space` marks a version; `f` diffs the two marked (or the marked one and the one under the
cursor, or the one under the cursor and the version before it) node by node, as
`surefoot definitions diff` does; enter shows a version as YAML; `x` deprecates it with a
reason (no new runs; those in flight finish on it), `u` reinstates it; `v` lists the
version's evaluations (`surefoot eval`'s recorded outcomes).
"""

from __future__ import annotations

import yaml
from surefoot.v1 import workflow_service_pb2 as ws
from textual.app import ComposeResult

from console import keys
from console.client import ConsoleError, ControlPlane, Page
from console.filtering import Query
from console.footer import KeyFooter
from console.modals import CommentModal, TextModal
from console.paged_table import PagedTable
from console.render_eval import evaluations_text
from console.render_fleet import DEFINITION_COLUMNS, definition_key, definition_row
from console.screens.polling import ConnectionLine, PollingScreen
from controlplane.cli import definition_diff


class DefinitionsScreen(PollingScreen):
    BINDINGS = keys.bindings(
        "definitions.show",
        "definitions.mark",
        "definitions.diff",
        "definitions.deprecate",
        "definitions.reinstate",
        "definitions.evaluations",
    )

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield PagedTable(
            DEFINITION_COLUMNS,
            self._load,
            key=definition_key,
            row=lambda info: definition_row(info, definition_key(info) in self.marked),
            noun="versions",
            id="definitions",
        )
        yield KeyFooter(compact=True)

    @property
    def definitions(self) -> PagedTable[ws.DefinitionInfo]:
        return self.query_one("#definitions", PagedTable)

    def on_mount(self) -> None:
        self.sub_title = "definitions"
        self.definitions.focus()
        super().on_mount()

    async def _load(self, token: str, size: int) -> Page:
        # ListDefinitions answers every version at once: one page, in name and sequence order.
        listed = await self.control_plane.list_definitions()
        return Page(sorted(listed, key=lambda d: (d.name, d.sequence)), "", len(listed))

    async def poll(self) -> None:
        await self.attempt(self.definitions.reload(), polling=True)

    def apply_query(self, query: Query) -> None:
        self.definitions.set_text_filter(
            Query(text=" ".join(filter(None, [query.text, query.workflow_name])))
        )

    def _selected(self) -> ws.DefinitionInfo | None:
        info = self.definitions.selected_item
        if info is None:
            self.say("no version selected", severity="warning")
        return info

    def action_mark(self) -> None:
        if (info := self._selected()) is None:
            return
        key = definition_key(info)
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked = [*self.marked, key][-2:]
        self.definitions.table.show(
            [(k, definition_row(i, k in self.marked)) for k, i in self.definitions.items.items()]
        )

    def _pair(self) -> tuple[ws.DefinitionInfo, ws.DefinitionInfo] | None:
        items = self.definitions.items
        chosen = [items[k] for k in self.marked if k in items]
        selected = self.definitions.selected_item
        if len(chosen) < 2 and selected is not None and definition_key(selected) not in self.marked:
            chosen.append(selected)
        if len(chosen) == 1:
            only = chosen[0]
            earlier = [
                i for i in items.values() if i.name == only.name and i.sequence < only.sequence
            ]
            if earlier:
                chosen.insert(0, max(earlier, key=lambda i: i.sequence))
        if len(chosen) < 2:
            self.say("mark two versions with space (or pick one that has a version before it)")
            return None
        before, after = sorted(chosen[:2], key=lambda i: (i.name, i.sequence))
        return before, after

    async def action_diff(self) -> None:
        pair = self._pair()
        if pair is None:
            return
        from surefoot_worker.authoring import definition_to_dict

        fetched = []
        for info in pair:
            found = await self.attempt(self.control_plane.get_definition(info.name, info.version))
            if found is None:
                return
            fetched.append(definition_to_dict(found[1]))
        before, after = fetched
        refs = [definition_key(info) for info in pair]
        found_diff = definition_diff.diff_definitions(before, after)
        text = definition_diff.describe(found_diff, refs[0], refs[1], after)
        self.app.push_screen(TextModal(f"diff {refs[0]} → {refs[1]}", text))

    async def action_show(self) -> None:
        if (info := self._selected()) is None:
            return
        found = await self.attempt(self.control_plane.get_definition(info.name, info.version))
        if found is None:
            return
        from surefoot_worker.authoring import definition_to_dict

        body = yaml.safe_dump(definition_to_dict(found[1]), sort_keys=False, allow_unicode=True)
        header = f"# {definition_key(info)}  {info.content_hash}  {info.runs_in_flight} in flight\n"
        self.app.push_screen(TextModal(definition_key(info), header + body))

    async def action_evaluations(self) -> None:
        if (info := self._selected()) is None:
            return
        ref = definition_key(info)
        note = ""
        try:
            found = await self.control_plane.list_evaluations(info.name, info.version)
        except ConsoleError as exc:
            # A control plane without the evaluation service has recorded none.
            if not str(exc).startswith("UNIMPLEMENTED"):
                await self.attempt(_raise(exc))
                return
            found, note = [], "this control plane does not record evaluations"
        self.app.push_screen(TextModal(f"evaluations of {ref}", evaluations_text(ref, found, note)))

    def action_deprecate(self) -> None:
        if (info := self._selected()) is None:
            return
        if info.deprecated:
            self.say(f"{definition_key(info)} is deprecated already (u reinstates it)")
            return

        async def deprecate(reason: str | None) -> None:
            if reason is None:
                return
            if not reason:
                self.say("a deprecation needs a reason: nothing done", severity="warning")
                return
            await self._change(info, reason, reinstate=False)

        title = (
            f"Deprecate {definition_key(info)} (no new runs; {info.runs_in_flight} in flight "
            "finish on it): reason"
        )
        self.app.push_screen(CommentModal(title), deprecate)

    def action_reinstate(self) -> None:
        if (info := self._selected()) is None:
            return
        if not info.deprecated:
            self.say(f"{definition_key(info)} is not deprecated")
            return

        async def reinstate(reason: str | None) -> None:
            if reason is not None:
                await self._change(info, reason, reinstate=True)

        self.app.push_screen(CommentModal(f"Reinstate {definition_key(info)}: comment"), reinstate)

    async def _change(self, info: ws.DefinitionInfo, reason: str, *, reinstate: bool) -> None:
        call = self.control_plane.deprecate_definition(info.name, info.version, reason, reinstate)
        if (answer := await self.attempt(call)) is not None:
            verb = "reinstated" if reinstate else "deprecated"
            if not answer.changed:
                verb = f"already {verb}"
            self.say(f"{verb} {definition_key(info)}: {answer.info.runs_in_flight} in flight")
            self.refresh_now()


async def _raise(exc: Exception) -> None:
    raise exc
