"""Commands every deployment has."""

from cmdgate_commands.builtin import echo

__all__ = ["echo"]
