"""Commands every deployment has."""

from cmdgate_commands.builtin import echo, http_request

__all__ = ["echo", "http_request"]
