"""Functions in the real Lambda Runtime Interface Emulator, a pool of environments each.

Each environment is one `aws-lambda-rie` process running `python -m awslambdaric`
with the import path Lambda gives a function: its code, its layers' python/
folders, and the runtime's own packages (awslambdaric, boto3) - never the dev venv.
One RIE serves one invocation at a time, so concurrency needs several.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# Under coverage, the runtime starts through this (it saves coverage data at SIGTERM).
COVERAGE_BOOTSTRAP = Path(__file__).with_name("coverage_bootstrap.py")
PORT_TRIES = 3  # launches of an environment whose emulator found a port taken


class PortTaken(RuntimeError):
    """The emulator could not bind a port picked free a moment before (someone else took it)."""


RUNTIME_SAVE_S = 5.0
# Lambda's synchronous Invoke takes at most this much event JSON (RequestEntityTooLargeException beyond).
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rie_binary(sam_site_packages: Path) -> Path:
    """The emulator that the aws-sam-cli package ships."""
    machine = os.uname().machine
    arch = "arm64" if machine in ("aarch64", "arm64") else "x86_64"
    binary = sam_site_packages / "samcli" / "local" / "rapid" / f"aws-lambda-rie-{arch}"
    if not binary.exists():
        raise FileNotFoundError(f"aws-lambda-rie not found at {binary}; run `make setup`")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


@dataclass(frozen=True)
class InvokeResult:
    """One invocation's outcome."""

    payload: bytes
    function_error: bool
    duration_ms: float
    cold: bool
    environment: int

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload or b"null")

    @property
    def status(self) -> str:
        """ "error" for a function error, else the HTTP statusCode of a proxy answer, else "ok"."""
        if self.function_error:
            return "error"
        try:
            parsed = self.json()
        except ValueError:
            return "ok"
        code = parsed.get("statusCode") if isinstance(parsed, dict) else None
        return str(code) if isinstance(code, int) else "ok"


INIT_ALLOWANCE_S = 10  # Lambda's init phase limit, outside the function's timeout
SHORT_TIMEOUT_S = 10


class InvocationTimeout(Exception):
    """The emulator did not answer in time."""


class EnvironmentFailed(Exception):
    """The emulator dropped the connection or could not be reached: Lambda would report a service error."""


class Throttled(Exception):
    """Every environment stayed busy: Lambda would throttle."""


class PayloadTooLarge(Exception):
    """The event is over Lambda's invoke limit: Lambda refuses it before any environment sees it."""


@dataclass(frozen=True)
class FunctionRuntime:
    """What it takes to start one function's environments."""

    name: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int

    @property
    def emulator_timeout_s(self) -> int:
        """The timeout the emulator is given. Lambda runs a function's init (up to 10 s) outside its
        timeout; the emulator counts init inside it, so a short-timeout function (the authorizer's 5 s)
        would time out on a cold start on a loaded machine where Lambda would not. Short timeouts get
        INIT_ALLOWANCE_S more, and `invoke` still fails a warm invocation that outlives `timeout_s`.
        Longer ones keep theirs exactly: their handlers read the remaining time (the worker's deadline).
        """
        return self.timeout_s + INIT_ALLOWANCE_S if self.timeout_s <= SHORT_TIMEOUT_S else self.timeout_s


class ExecutionEnvironment:
    """One RIE process; it starts the Python runtime lazily on its first invocation (the cold start)."""

    def __init__(self, runtime: FunctionRuntime, index: int, rie: Path, python: Path, log_dir: Path) -> None:
        self.runtime = runtime
        self.index = index
        self._rie = rie
        self._python = python
        self._log_path = log_dir / f"{runtime.name}-{index}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self.invocations = 0
        self._client = httpx.Client(timeout=httpx.Timeout(runtime.emulator_timeout_s + 10, connect=2))
        self._coverage = coverage_environment(os.environ)

    def start(self) -> None:
        """Launch the emulator and wait until it accepts connections.

        Its two ports are picked free, then bound by the emulator: another process (a stack starting
        on the other test worker) can take one in between, so a bind failure is tried again on new ports.
        """
        for _ in range(PORT_TRIES - 1):
            try:
                self._launch()
                return
            except PortTaken:
                continue
        self._launch()

    def _launch(self) -> None:
        self._port = free_port()
        api_port = free_port()
        rt = self.runtime
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(rt.code_dir),
            "PYTHONPATH": os.pathsep.join([str(rt.code_dir), *(str(d) for d in rt.layer_dirs)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_FUNCTION_NAME": rt.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(rt.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(rt.emulator_timeout_s),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{rt.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{self.index}",
            **rt.environment,
            # Coverage of the test run (docs/coverage.md): COVERAGE_PROCESS_START starts it in the runtime.
            **self._coverage,
        }
        log = self._log_path.open("ab")
        logged_before = log.tell()  # what this launch's emulator writes starts here
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, loopback only  # nosec B603
            [
                str(self._rie),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{self._port}",
                "--runtime-api-address",
                f"127.0.0.1:{api_port}",
                str(self._python),
                *([str(COVERAGE_BOOTSTRAP)] if self._coverage else []),
                "-m",
                "awslambdaric",
                rt.handler,
            ],
            cwd=rt.code_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                with self._log_path.open("rb") as written:
                    written.seek(logged_before)
                    said = written.read(65536)
                if b"address already in use" in said:
                    raise PortTaken(f"{rt.name}#{self.index}: a port was taken before the emulator bound it")
                raise RuntimeError(f"{rt.name}#{self.index}: emulator exited; see {self._log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{rt.name}#{self.index}: emulator did not listen within 10 s")

    def invoke(self, payload: bytes) -> InvokeResult:
        """One invocation; the payload is the event, the answer the handler's return value or error."""
        cold = self.invocations == 0
        started = time.monotonic()
        try:
            response = self._client.post(f"http://127.0.0.1:{self._port}{INVOKE_PATH}", content=payload)
        except httpx.TimeoutException as exc:
            raise InvocationTimeout(f"{self.runtime.name} did not answer") from exc
        except httpx.TransportError as exc:
            raise EnvironmentFailed(f"{self.runtime.name}#{self.index}: {exc!r}") from exc
        self.invocations += 1
        body = response.content
        duration_s = time.monotonic() - started
        if not cold and duration_s > self.runtime.timeout_s:
            # Only the init allowance let it run this long: Lambda would have timed it out.
            raise InvocationTimeout(f"{self.runtime.name} ran {duration_s:.1f} s, over its {self.runtime.timeout_s} s")
        return InvokeResult(
            payload=body,
            function_error=_is_function_error(response.headers, body),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            cold=cold,
            environment=self.index,
        )

    def stop(self) -> None:
        """Terminate the emulator (and the runtime it started).

        A measured runtime is stopped first and given RUNTIME_SAVE_S to save its coverage data:
        on SIGTERM the emulator SIGKILLs its runtime at once.
        """
        self._client.close()
        if self._process is not None and self._process.poll() is None:
            if self._coverage:
                stop_children(self._process.pid, RUNTIME_SAVE_S)
            try:
                os.killpg(self._process.pid, 15)
                self._process.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self._process.pid, 9)


def coverage_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The coverage settings of this process (COVERAGE_PROCESS_START, COVERAGE_FILE, ...) for a runtime's.

    Empty unless coverage is measured (only `make test` sets them): the runtime's environment is
    otherwise exactly what Lambda gives a function.
    """
    if "COVERAGE_PROCESS_START" not in environ:
        return {}  # not measured (COVERAGE_FILE alone starts nothing)
    return {name: value for name, value in environ.items() if name.startswith("COVERAGE_")}


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in parentheses may hold spaces: the parent pid is 2nd after the last ")".
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def stop_children(pid: int, timeout_s: float) -> None:
    """SIGTERM the children of `pid` and wait until they are gone (zombies count as gone) or `timeout_s` passes."""
    pending = children(pid)
    for child in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pending = [child for child in pending if _running(child)]
        if pending:
            time.sleep(0.02)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _is_function_error(headers: httpx.Headers, body: bytes) -> bool:
    if headers.get("x-amz-function-error"):
        return True
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return False
    return isinstance(parsed, dict) and "errorType" in parsed and "errorMessage" in parsed and len(parsed) <= 4


class FunctionPool:
    """A function's environments; an invocation takes an idle one, as Lambda scales out."""

    def __init__(self, environments: list[ExecutionEnvironment], throttle_after_s: float = 30.0) -> None:
        self._idle: queue.Queue[ExecutionEnvironment] = queue.Queue()
        self._all = environments
        self._throttle_after_s = throttle_after_s
        self._lock = threading.Lock()
        self.cold_starts = 0
        self.invocations = 0

    @property
    def size(self) -> int:
        """How many environments the pool has."""
        return len(self._all)

    @property
    def name(self) -> str:
        """The function's name."""
        return self._all[0].runtime.name

    def start(self) -> None:
        """Start every environment."""
        for env in self._all:
            env.start()
            self._idle.put(env)

    def invoke(self, event: Any) -> InvokeResult:
        """Invoke with a JSON event on the next idle environment."""
        payload = json.dumps(event).encode("utf-8")
        if len(payload) > MAX_INVOKE_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"{len(payload)} bytes of event for {self.name}")
        try:
            env = self._idle.get(timeout=self._throttle_after_s)
        except queue.Empty as exc:
            raise Throttled(self.name) from exc
        try:
            result = env.invoke(payload)
        finally:
            self._idle.put(env)
        with self._lock:
            self.invocations += 1
            self.cold_starts += int(result.cold)
        return result

    def stats(self) -> dict[str, int]:
        """Invocations and cold starts so far."""
        return {"environments": len(self._all), "invocations": self.invocations, "cold_starts": self.cold_starts}

    def stop(self) -> None:
        """Stop every environment."""
        for env in self._all:
            env.stop()
