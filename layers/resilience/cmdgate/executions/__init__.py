"""Execution records, their status machine, and the sync/async run paths."""

from cmdgate.executions.model import Execution, ExecutionError
from cmdgate.executions.queue import MessageQueue, PoisonMessage
from cmdgate.executions.service import AttemptInProgress, ExecutionService, RetryableFailure, Submission
from cmdgate.executions.store import ExecutionStore

__all__ = [
    "AttemptInProgress",
    "Execution",
    "ExecutionError",
    "ExecutionService",
    "ExecutionStore",
    "MessageQueue",
    "PoisonMessage",
    "RetryableFailure",
    "Submission",
]
