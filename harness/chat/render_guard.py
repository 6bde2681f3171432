"""No command leaves the conversation in a state the template cannot render.

Before a command runs, :func:`snapshot` notes the tree and the template; after it, :func:`guard`
renders the conversation again if either changed (harness.prompt.preview). An edit that turns a
conversation the template rendered into one it cannot is refused (the dispatcher then puts the
conversation back); a generated turn that does is kept, with a warning naming the message. A
message whose tool calls the prompt does not show is said once, when that starts. An edit
command asks :func:`edit` first, so that it says what it did only once the change is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.chat.events import Emit, Notice
from harness.chat.tree import Tree
from harness.errors import CommandError
from harness.prompt.preview import check_render
from harness.prompt.templates import ChatTemplate

if TYPE_CHECKING:
    from harness.chat.session import Session


@dataclass(frozen=True)
class Snapshot:
    tree: Tree
    template: ChatTemplate
    variables: Mapping[str, Any]
    generated: int  # turns generated so far


def snapshot(session: Session) -> Snapshot:
    return Snapshot(session.tree, session.bench.template, session.bench.variables, len(session.transcript))


def edit(session: Session, tree: Tree) -> None:
    """Make `tree` the conversation (one undo step), unless the template renders the current
    conversation and cannot render `tree`'s: then CommandError, and nothing changes."""
    bench = session.bench
    after = check_render(bench.template, bench.variables, tree.conversation())
    if not after.renders and check_render(bench.template, bench.variables, session.conversation).renders:
        raise CommandError(after.describe(bench.template.name), hint=f"{REFUSED_HINT}; the conversation is as it was")
    session.trees.change(tree)


REFUSED_HINT = "the template cannot take this message; /template another, or change it"


def guard(session: Session, before: Snapshot, emit: Emit) -> None:
    """Refuse (CommandError) an edit that made the conversation unrenderable; warn of a
    generated one that did, and of messages whose tool calls the template newly leaves out."""
    bench = session.bench
    if session.tree is before.tree and bench.template is before.template and bench.variables == before.variables:
        return
    after = check_render(bench.template, bench.variables, session.conversation)
    if after.renders and not after.dropped:
        return
    prior = check_render(before.template, before.variables, before.tree.conversation())
    if not after.renders:
        if not prior.renders:
            return  # it could not render before either: the user may be mending it
        if len(session.transcript) == before.generated and session.tree is not before.tree:
            raise CommandError(after.describe(bench.template.name), hint=REFUSED_HINT)
        emit(Notice(after.describe(bench.template.name) + "; /edit or /delete that message", "warning"))
        return
    path, earlier = session.tree.path(), before.tree.path()
    was_dropped = {earlier[i].id for i in prior.dropped}
    for i in after.dropped:
        if path[i].id not in was_dropped:
            emit(Notice(f"message {i} has tool calls the prompt does not show: template {bench.template.name} "
                        "leaves them out (/raw shows the prompt)", "warning"))
