"""Follow-ups: commands a finished run's command declares (`on_success` / `on_failure`), queued once.

For each `command.executed` event the event processor reads the parent record and, when its
command declares follow-ups for that outcome, derives each one's params from the parent's public
view and queues it (`ExecutionService.enqueue_follow_up`): async, with the permissions the parent
was authorized with, one step deeper in the chain. A chain stops at `max_depth` follow-ups after
the run a caller started, so a command that follows itself ends. A follow-up's id derives from
its parent's id and its slot (`s0`, `f1`, ...), so a redelivered event — whether or not the stats
already counted it — never queues one twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from cmdgate.commands import CommandRegistry, FollowUp
from cmdgate.executions import ExecutionService

logger = Logger(child=True)
FAILED = frozenset({"failed", "dead_lettered"})


@dataclass
class FollowUpReport:
    """What one event led to."""

    queued: list[str] = field(default_factory=list)
    stopped_at_depth: bool = False


class FollowUps:
    """Queues the follow-ups of finished runs."""

    def __init__(self, registry: CommandRegistry, executions: ExecutionService, max_depth: int) -> None:
        self._registry = registry
        self._executions = executions
        self._max_depth = max_depth

    def on_executed(self, event: dict[str, Any]) -> FollowUpReport:
        """Queue the follow-ups of the run `event` reports (none if its command declares none)."""
        report = FollowUpReport()
        spec = self._registry.get(str(event.get("command")))
        status = event.get("status")
        if spec is None:
            return report
        declared: tuple[FollowUp, ...] = (
            spec.on_success if status == "succeeded" else spec.on_failure if status in FAILED else ()
        )
        if not declared:
            return report
        parent = self._executions.find(str(event.get("execution_id")))
        if parent is None or parent.status != status:
            return report  # gone, or redriven since: its next end brings its own event
        if parent.chain_depth >= self._max_depth:
            logger.warning(
                "follow-up chain stopped at its depth limit",
                extra={"execution_id": parent.execution_id, "depth": parent.chain_depth},
            )
            report.stopped_at_depth = True
            return report
        view = parent.public_view()
        prefix = "s" if status == "succeeded" else "f"
        for index, follow_up in enumerate(declared):
            try:
                params = follow_up.params(view)
            except Exception:  # a command's derivation failing skips that follow-up only
                logger.exception("follow-up params not derived", extra={"execution_id": parent.execution_id})
                continue
            if params is None:
                continue
            queued = self._executions.enqueue_follow_up(parent, f"{prefix}{index}", follow_up.command, params)
            if queued is not None:
                report.queued.append(queued)
        return report
