"""Command registry, decorator and command errors."""

from cmdgate.commands.errors import CommandError, DependencyRefused, TransientCommandError
from cmdgate.commands.registry import (
    CommandContext,
    CommandRegistry,
    CommandSpec,
    NoParams,
    command,
    default_registry,
    load_packs,
)

__all__ = [
    "CommandContext",
    "CommandError",
    "CommandRegistry",
    "CommandSpec",
    "DependencyRefused",
    "NoParams",
    "TransientCommandError",
    "command",
    "default_registry",
    "load_packs",
]
