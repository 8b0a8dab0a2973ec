"""``python -m cmdgate_local.gist_server --port 8765``: serve until interrupted."""

from cmdgate_local.gist_server.server import main

main()
