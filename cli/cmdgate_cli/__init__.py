"""cmdgate's operator CLI: the HTTP API from a terminal or a script, with exit codes that mean something."""

__version__ = "0.1.0"
