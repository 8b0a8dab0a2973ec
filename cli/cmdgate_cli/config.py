"""Where the CLI finds the API and its key: flags, then the environment, then a config file kept 0600.

The config file is TOML (`url = "..."`, `api_key = "..."`). Like ssh with a private key, the CLI refuses
to read one that others may read or write, and writes it 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cmdgate_cli.problems import usage_error

DEFAULT_URL = "http://127.0.0.1:3000"
URL_ENV = "CMDGATE_URL"
KEY_ENV = "CMDGATE_API_KEY"
CONFIG_ENV = "CMDGATE_CONFIG"


def config_path() -> Path:
    """`$CMDGATE_CONFIG`, else `$XDG_CONFIG_HOME/cmdgate/config.toml`, else `~/.config/cmdgate/config.toml`."""
    if explicit := os.environ.get(CONFIG_ENV):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cmdgate" / "config.toml"


@dataclass(frozen=True)
class FileConfig:
    """What a config file holds."""

    url: str | None = None
    api_key: str | None = None


def read_config(path: Path) -> FileConfig:
    """The config file's contents (empty if there is none); refuses one that others may read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return FileConfig()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise usage_error(
            "Config file is readable by others",
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; it holds an API key, so the CLI ignores it "
            f"until only you may read it: chmod 600 {path}",
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise usage_error("Config file belongs to another user", f"{path} is not yours; the CLI will not read it.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise usage_error("Config file is not valid TOML", f"{path}: {error}") from None
    url, key = data.get("url"), data.get("api_key")
    return FileConfig(url=url if isinstance(url, str) else None, api_key=key if isinstance(key, str) else None)


def write_config(path: Path, config: FileConfig) -> None:
    """Write the config file atomically, 0600 in a 0700 directory (never briefly readable by others)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pairs = (("url", config.url), ("api_key", config.api_key))
    text = "".join(
        f"{name} = {json.dumps(value, ensure_ascii=False)}\n" for name, value in pairs if value
    )  # JSON strings are TOML
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Target:
    """The API to talk to and the key to present (None: no key anywhere)."""

    url: str
    api_key: str | None

    def __repr__(self) -> str:  # never show the key, not even in a debugger's or a log's repr
        return f"Target(url={self.url!r}, api_key={'set' if self.api_key else 'unset'})"


def resolve_target(url_flag: str | None) -> Target:
    """`--url` (or CMDGATE_URL, which typer folds into it), then the config file, then the local stack's URL;
    the key from CMDGATE_API_KEY, else the config file. The file is read only when something is still missing."""
    key = os.environ.get(KEY_ENV) or None
    url = url_flag or os.environ.get(URL_ENV) or None
    if url is None or key is None:
        found = read_config(config_path())
        url, key = url or found.url, key or found.api_key
    chosen = (url or DEFAULT_URL).rstrip("/")
    parts = urlsplit(chosen)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise usage_error("Bad API URL", f"{chosen!r} is not an http(s) URL, e.g. http://127.0.0.1:3000.")
    return Target(url=chosen, api_key=key)
