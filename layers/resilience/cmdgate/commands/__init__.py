"""Command registry, decorator and command errors."""

from cmdgate.commands.errors import CommandCancelled, CommandError, DependencyRefused, TransientCommandError
from cmdgate.commands.registry import (
    CommandContext,
    CommandRegistry,
    CommandServices,
    CommandSpec,
    FollowUp,
    NoParams,
    NoServices,
    command,
    default_registry,
    load_packs,
)

__all__ = [
    "CommandCancelled",
    "CommandContext",
    "CommandError",
    "CommandRegistry",
    "CommandServices",
    "CommandSpec",
    "DependencyRefused",
    "FollowUp",
    "NoParams",
    "NoServices",
    "TransientCommandError",
    "command",
    "default_registry",
    "load_packs",
]
