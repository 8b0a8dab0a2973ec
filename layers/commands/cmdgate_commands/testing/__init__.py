"""Commands for tests and the local stack only (enabled by COMMAND_PACKS)."""

from cmdgate_commands.testing import fail, sleep

__all__ = ["fail", "sleep"]
