"""Commands for tests and the local stack only (enabled by COMMAND_PACKS)."""

from cmdgate_commands.testing import blob, count, fail, limited, sleep

__all__ = ["blob", "count", "fail", "limited", "sleep"]
