"""Commands for tests and the local stack only (enabled by COMMAND_PACKS)."""

from cmdgate_commands.testing import blob, chain, count, fail, limited, sleep

__all__ = ["blob", "chain", "count", "fail", "limited", "sleep"]
