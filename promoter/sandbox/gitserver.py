"""A smart-HTTP git server for tests and the sandbox: git's own http-backend behind token auth.

Each request runs `git http-backend` as a CGI subprocess, so clone, blobless fetch, protocol v2
and push behave exactly as against a real forge; this module only does HTTP framing (chunked
request bodies, chunked responses, keep-alive), authentication and fault injection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import io
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from promoter.sandbox.envrepo import git_env
from promoter.sandbox.loopback import BodyReader, LoopbackHandler, LoopbackServer

_BLOCK = 64 * 1024
_REALM = "promoter-test"
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")

# Written into every repo the server creates. Filters and any-SHA wants are what a blobless
# partial clone and its lazy blob fetches need; receivepack is on explicitly because
# http-backend otherwise enables push only when it trusts REMOTE_USER. Packs get their reverse
# index on disk (.rev), as git >= 2.41 writes by default and Gitaly has configured since 2021:
# without it every fetch from a pack of 500,000 objects first sorts its offsets (~10 ms).
_REPO_CONFIG = """\
[uploadpack]
\tallowFilter = true
\tallowAnySHA1InWant = true
[http]
\treceivepack = true
[receive]
\tdenyDeletes = false
[pack]
\twriteReverseIndex = true
"""


def basic_auth_header(token: str, username: str = "x-access-token") -> str:
    """The `Authorization` header value git would send for username:token."""
    raw = f"{username}:{token}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def auth_config_env(token: str, username: str = "x-access-token") -> dict[str, str]:
    """Environment that makes every git process (and its lazy-fetch children) send the token.

    Uses GIT_CONFIG_COUNT rather than `-c http.extraHeader=...` so the token stays out of argv,
    where ps and failing-test reports would show it.
    """
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": "Authorization: " + basic_auth_header(token, username),
    }


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; never holds credentials."""

    method: str
    path: str
    status: int
    user: str | None
    git_protocol: str | None
    content_encoding: str | None
    chunked: bool
    seconds: float
    stderr: str = ""
    cpu: float = 0.0  # CPU seconds of its git processes (http-backend and its children)


class GitHttpServer(LoopbackServer):
    """Serves every bare repo under `root` at http://host:port/<name>.git with token auth."""

    thread_name = "git-http"

    def __init__(self, root: Path, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if not token:
            raise ValueError("token must not be empty")
        super().__init__(_Handler, host, port)
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.requests: list[RequestRecord] = []
        self._fail_remaining = 0
        # Requests being served: a handler records its request after the client already has
        # the whole answer, so readers of the logs wait for this to reach zero (wait_idle).
        self._in_flight = 0
        self._idle = threading.Condition()
        self._fail_status = 503
        self._lose_remaining = 0
        self._latency = 0.0
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._push_writers: dict[str, Callable[[], None]] = {}
        # Snapshot now: handler threads must not iterate os.environ while tests monkeypatch it.
        self._cgi_base_env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "promoter-testing",
        }

    def _on_stop(self) -> None:
        # Killed before the connections are cut, so relays end rather than wait on the CGI.
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    # repos ---------------------------------------------------------------------------------

    def repo_path(self, name: str) -> Path:
        return self.root / f"{_check_name(name)}.git"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{_check_name(name)}.git"

    def create_repo(self, name: str, default_branch: str = "main") -> Path:
        path = self.repo_path(name)
        if path.exists():
            raise FileExistsError(f"repo {name!r} already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)],
            capture_output=True,
            env=git_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git init {path} failed: {proc.stderr.decode(errors='replace')}")
        with (path / "config").open("a", encoding="utf-8") as config:
            config.write(_REPO_CONFIG)
        return path

    def install_hook(self, name: str, hook: str, script: str) -> Path:
        """Write git hook `hook` (pre-receive, update, ...) of repo `name`: git runs it on push,
        and what it prints reaches the client as `remote:` lines."""
        path = self.repo_path(name) / "hooks" / hook
        path.parent.mkdir(exist_ok=True)
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)
        return path

    def before_push(self, name: str, writer: Callable[[], None] | None) -> None:
        """Run `writer` whenever a push to repo `name` begins, before the server advertises its
        refs: a concurrent writer whose commit lands between the client's fetch and its push,
        so the client finds the branch moved (a real lost race). None removes it."""
        with self._lock:
            if writer is None:
                self._push_writers.pop(_check_name(name), None)
            else:
                self._push_writers[_check_name(name)] = writer

    # fault injection -----------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next n requests (of any kind, before auth) with `status`."""
        with self._lock:
            self._fail_remaining = n
            self._fail_status = status

    def lose_answers(self, n: int) -> None:
        """Serve the next n pushes (receive-pack POSTs) in full, then drop the connection
        instead of answering: a push that landed while its answer was lost on the way."""
        with self._lock:
            self._lose_remaining = n

    def set_latency(self, seconds: float) -> None:
        """Delay every request by `seconds` before anything else happens."""
        self._latency = max(0.0, seconds)

    # used by the handler -------------------------------------------------------------------

    def _take_loss(self, path: str) -> bool:
        with self._lock:
            if self._lose_remaining <= 0 or not urlsplit(path).path.endswith("/git-receive-pack"):
                return False
            self._lose_remaining -= 1
            return True

    def _take_fault(self) -> int | None:
        with self._lock:
            if self._fail_remaining <= 0:
                return None
            self._fail_remaining -= 1
            return self._fail_status

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)
            self._log(record.method, record.path, record.status)

    def _begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def _end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being served, so request_log and requests are complete."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _check_token(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8"), self.token.encode("utf-8"))


def _check_name(name: str) -> str:
    name = name.removesuffix(".git")
    parts = name.split("/")
    if not _NAME_RE.fullmatch(name) or any(p in (".", "..") or p.endswith(".git") for p in parts):
        raise ValueError(f"invalid repo name: {name!r}")
    return name


class _Handler(LoopbackHandler["GitHttpServer"]):
    methods = ("GET", "POST", "HEAD")
    # Idle keep-alive connections are dropped after this; stop() does not wait for it.
    timeout = 120

    def serve(self) -> None:
        self.owner._begin()
        try:
            self._serve()
        finally:
            self.owner._end()

    def _serve(self) -> None:
        owner = self.owner
        started = time.monotonic()
        status = 500
        user: str | None = None
        stderr = ""
        cpu = 0.0
        chunked = self.chunked
        try:
            if owner._stopping:
                # A keep-alive connection can still send requests while stop() runs.
                status = 503
                self.close_connection = True
                self._send_plain(status, "server stopping\n")
                return
            if owner._latency:
                time.sleep(owner._latency)
            fault = owner._take_fault()
            if fault is not None:
                status = fault
                self._send_plain(status, f"injected fault {status}\n")
                return
            user = self._authenticate()
            if user is None:
                status = 401
                self._send_plain(
                    401,
                    "authentication required\n",
                    {"WWW-Authenticate": f'Basic realm="{_REALM}"'},
                )
                return
            writer = self._push_writer()
            if writer is not None:
                writer()
            if self.command == "POST" and owner._take_loss(self.path):
                answer, self.wfile = self.wfile, io.BytesIO()  # served, never sent
                try:
                    status, stderr, cpu = self._run_cgi(user, chunked)
                finally:
                    self.wfile = answer
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, stderr, cpu = self._run_cgi(user, chunked)
        finally:
            owner._record(
                RequestRecord(
                    method=self.command,
                    path=self.path,
                    status=status,
                    user=user,
                    git_protocol=self.headers.get("Git-Protocol"),
                    content_encoding=self.headers.get("Content-Encoding"),
                    chunked=chunked,
                    seconds=time.monotonic() - started,
                    stderr=stderr,
                    cpu=cpu,
                )
            )

    def _push_writer(self) -> Callable[[], None] | None:
        url = urlsplit(self.path)
        if self.command != "GET" or "service=git-receive-pack" not in url.query:
            return None
        name = unquote(url.path).strip("/").removesuffix("/info/refs").removesuffix(".git")
        with self.owner._lock:
            return self.owner._push_writers.get(name)

    def _authenticate(self) -> str | None:
        """The user name for a valid token, else None. Basic password or Bearer value."""
        owner = self.owner
        scheme, _, value = self.headers.get("Authorization", "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = decoded.partition(":")
            if sep and owner._check_token(password):
                return username or "x-access-token"
        elif scheme.lower() == "bearer" and value and owner._check_token(value):
            return "bearer"
        return None

    def _send_plain(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        body = text.encode()
        # An unread request body would be parsed as the next request on this connection.
        if self.has_body():
            self.close_connection = True
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cgi_env(self, user: str, chunked: bool) -> dict[str, str]:
        owner = self.owner
        url = urlsplit(self.path)
        env = dict(owner._cgi_base_env)
        env.update(
            REQUEST_METHOD=self.command,
            PATH_INFO=unquote(url.path),
            QUERY_STRING=url.query,
            REMOTE_USER=user,
            REMOTE_ADDR=str(self.client_address[0]),
            SERVER_NAME=owner.host,
            SERVER_PORT=str(owner.port),
            SERVER_PROTOCOL=self.request_version,
        )
        # With no CONTENT_LENGTH, http-backend reads the body until EOF, which is exactly
        # what a decoded chunked body is.
        if not chunked and self.headers.get("Content-Length") is not None:
            env["CONTENT_LENGTH"] = str(self.content_length())
        for header, var in (
            ("Content-Type", "CONTENT_TYPE"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),  # gzip: http-backend inflates
            ("Git-Protocol", "HTTP_GIT_PROTOCOL"),  # "version=2"
            # Older http-backends only read GIT_PROTOCOL (git's docs set it via SetEnvIf).
            ("Git-Protocol", "GIT_PROTOCOL"),
            ("Accept", "HTTP_ACCEPT"),
            ("User-Agent", "HTTP_USER_AGENT"),
        ):
            value = self.headers.get(header)
            if value is not None:
                env[var] = value
        return env

    def _run_cgi(self, user: str, chunked: bool) -> tuple[int, str, float]:
        owner = self.owner
        has_body = self.has_body()
        body = self.body_reader()
        with tempfile.TemporaryFile() as errfile:
            proc = subprocess.Popen(
                ["git", "http-backend"],
                stdin=subprocess.PIPE if has_body else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errfile,
                env=self._cgi_env(user, chunked),
                cwd=owner.root,
            )
            with owner._lock:
                owner._procs.add(proc)
            feeder: threading.Thread | None = None
            try:
                if proc.stdin is not None:
                    # A separate writer keeps a CGI that answers before reading everything (an
                    # error, a 404) from deadlocking against a client still sending.
                    feeder = threading.Thread(
                        target=_feed,
                        args=(body, proc.stdin),
                        name=f"git-http-{owner.port}-feed",
                        daemon=True,
                    )
                    feeder.start()
                assert proc.stdout is not None
                status = self._relay(proc.stdout)
            finally:
                if feeder is not None:
                    feeder.join(timeout=0.5)
                    if feeder.is_alive():
                        # The client still holds body bytes the CGI never wanted; unblock the
                        # reader and drop the connection since its framing is now lost.
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RD)
                        if proc.poll() is None:
                            proc.kill()
                        feeder.join()
                if has_body and not body.done:
                    self.close_connection = True
                cpu = _reap(proc, timeout=30)
                if cpu is None:
                    proc.kill()
                    proc.wait()
                    cpu = 0.0
                if proc.stdout is not None:
                    proc.stdout.close()
                with owner._lock:
                    owner._procs.discard(proc)
            errfile.seek(0)
            stderr = errfile.read(16384).decode("utf-8", "replace")
        return status, stderr, cpu

    def _relay(self, out: IO[bytes]) -> int:
        """Turn the CGI's header block into a status line, then stream its body."""
        status, reason = 200, "OK"
        headers: list[tuple[str, str]] = []
        while True:
            line = out.readline(65536)
            if not line:
                self._send_plain(502, "git http-backend ended without a response\n")
                return 502
            line = line.rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            value = value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                try:
                    status = int(code)
                except ValueError:
                    self._send_plain(502, f"bad CGI status line {value!r}\n")
                    return 502
            elif name.lower() not in ("transfer-encoding", "connection"):
                headers.append((name, value))

        has_length = any(name.lower() == "content-length" for name, _ in headers)
        # HTTP/1.0 clients cannot take chunked responses: end the body by closing instead.
        use_chunked = not has_length and self.request_version != "HTTP/1.0"
        if not has_length and not use_chunked:
            self.close_connection = True
        self.send_response(status, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        if use_chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

        read1 = getattr(out, "read1", out.read)
        while True:
            data = read1(_BLOCK)
            if not data:
                break
            if self.command == "HEAD":
                continue
            if use_chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if use_chunked and self.command != "HEAD":
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return status


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> float | None:
    """Wait for `proc` to exit, as Popen.wait does, and return the CPU seconds it and the
    children it waited for used (os.wait4's accounting): what the benchmarks charge a request
    on the server's side. None when it is still running after `timeout` seconds."""
    delay, waited = 0.0005, 0.0
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already (by Popen's own bookkeeping)
            proc.wait()
            return 0.0
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if waited > timeout:
            return None
        time.sleep(delay)
        waited, delay = waited + delay, min(delay * 2, 0.05)


def _feed(body: BodyReader, stdin: IO[bytes]) -> None:
    try:
        while True:
            data = body.read()
            if not data:
                break
            stdin.write(data)
            # Forward each piece now: the CGI may be waiting on it while we wait on the client.
            stdin.flush()
    except (OSError, ValueError):
        # Broken pipe (CGI stopped reading) or a client that went away: the relay side sees
        # the consequences and closes the connection; nothing useful to add here.
        pass
    finally:
        with contextlib.suppress(OSError):
            stdin.close()
