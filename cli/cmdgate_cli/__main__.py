"""`python -m cmdgate_cli`: the same as the `cmdgate` console script."""

from cmdgate_cli.app import run

run()
