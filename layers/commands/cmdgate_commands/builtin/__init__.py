"""Commands every deployment has."""

from cmdgate_commands.builtin import echo, http_request, state_commands

__all__ = ["echo", "http_request", "state_commands"]
