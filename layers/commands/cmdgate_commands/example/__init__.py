"""`example` pack: a worked example of adding your own command. Copy this folder to start a pack.

A pack is a package `cmdgate_commands.<name>` whose import registers its commands. Enable it with
the template parameter `CommandPacks` (comma-separated; `builtin` is always on), e.g.
`sam deploy --parameter-overrides CommandPacks=builtin,example`, or locally
`make run ARGS="--param CommandPacks=builtin,example"`. Read `greet.py` next.
"""

from __future__ import annotations

from cmdgate_commands.example.greet import greet

__all__ = ["greet"]
