"""Finds secrets in log files: API keys, JWTs, GitHub tokens, callback signing secrets, known values.

Used by the test suite's last integration module (over every log the run's stacks wrote) and as
`python -m audit.secrets_in_logs PATH...` over any log directory. A hit is reported by file,
line and kind, with the secret itself cut to a short prefix, so the report is no new leak.
The one line allowed to hold a secret is `make run`'s notice of the admin key it created.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cmdgate.auth.apikeys import API_KEY_PREFIX
from cmdgate.callbacks.signing import SECRET_PREFIX
from cmdgate_local.build_snapshot import is_snapshot
from cmdgate_local.stack import ADMIN_KEY_LINE

# The local stack's GitHub token (cmdgate_local.stack puts it in Secrets Manager).
LOCAL_GIST_TOKEN = "local-gist-token"  # noqa: S105 - the loopback Gist API's token, searched for
ALLOWED_LINE = ADMIN_KEY_LINE.split("{", 1)[0]
LOG_SUFFIXES = (".log",)

PATTERNS: dict[str, re.Pattern[str]] = {
    # cg_ + token_urlsafe(32) (cmdgate.auth.apikeys); shorter hand-made keys (tests, bootstrap) too.
    "api key": re.compile(rf"(?<![A-Za-z0-9_]){re.escape(API_KEY_PREFIX)}[A-Za-z0-9_-]{{16,}}"),
    # header.payload.signature, both JSON parts base64url of "{": the signature may be empty (alg none).
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"),
    "github token": re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    # Standard Webhooks: whsec_ + base64 of the key (cmdgate.callbacks.signing).
    "signing secret": re.compile(rf"{re.escape(SECRET_PREFIX)}[A-Za-z0-9+/=]{{16,}}"),
}


@dataclass(frozen=True)
class Hit:
    """One secret found: where, what kind, and a prefix of it short enough to show."""

    path: Path
    line_number: int
    kind: str
    preview: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.kind} ({self.preview}…)"


@dataclass(frozen=True)
class ScanResult:
    """What a scan read and found."""

    files: tuple[Path, ...]
    lines: int
    hits: tuple[Hit, ...]


def _preview(secret: str) -> str:
    return secret[: min(8, max(1, len(secret) // 4))]


def scan_line(line: str, known: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """(kind, secret) for each secret in one log line; none in `make run`'s admin-key notice."""
    if line.startswith(ALLOWED_LINE):
        return
    for kind, pattern in PATTERNS.items():
        for match in pattern.finditer(line):
            yield kind, match.group(0)
    for value in (LOCAL_GIST_TOKEN, *known):
        if value and value in line:
            yield "known secret", value


def log_files(roots: Iterable[Path]) -> list[Path]:
    """Every log file under `roots` (a root may be a file itself), in a stable order.

    Other processes change these trees while they are read: a stack that stops removes its
    build copy. A folder that is gone by the time it is listed is passed over, and build copies
    (function code, no logs) are not walked at all.
    """
    found: set[Path] = set()
    for root in roots:
        if root.is_file():
            found.add(root)
            continue
        for folder, subfolders, names in os.walk(root):  # os.walk skips a folder it cannot list
            subfolders[:] = [name for name in subfolders if not is_snapshot(Path(folder, name))]
            found.update(Path(folder, name) for name in names if name.endswith(LOG_SUFFIXES))
    return sorted(found)


def scan(roots: Iterable[Path], known: Sequence[str] = ()) -> ScanResult:
    """Scan every log file under `roots` for secrets; `known` adds exact values to look for.

    A file removed between listing and reading (its stack's folder cleaned up) is left out.
    """
    files: list[Path] = []
    hits: list[Hit] = []
    lines = 0
    for path in log_files(roots):
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        files.append(path)
        with handle:
            for number, line in enumerate(handle, start=1):
                lines += 1
                hits.extend(Hit(path, number, kind, _preview(secret)) for kind, secret in scan_line(line, known))
    return ScanResult(files=tuple(files), lines=lines, hits=tuple(hits))


def main(argv: Sequence[str] | None = None) -> int:
    """Scan the given paths; exit 1 on any hit."""
    parser = argparse.ArgumentParser(prog="python -m audit.secrets_in_logs", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="log files or directories (searched for *.log)")
    args = parser.parse_args(argv)
    result = scan(args.paths)
    for hit in result.hits:
        print(hit)
    print(f"log scan: {len(result.hits)} secrets in {result.lines} lines of {len(result.files)} log files")
    return 1 if result.hits else 0


if __name__ == "__main__":
    sys.exit(main())
