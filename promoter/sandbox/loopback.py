"""The threaded HTTP server on 127.0.0.1 that the test-bed servers share.

`LoopbackServer` is the lifecycle (start on a free port, clean stop, context manager, `url`),
the request log and the record of unexpected handler errors; `LoopbackHandler` routes the HTTP
methods a server serves to one `serve()` and reads request bodies. What each server answers,
and how it injects faults, stays in gitserver.py and apidouble.py (with github_http.py and
gitlab_http.py for each forge's side).
"""

from __future__ import annotations

import contextlib
import io
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

_BLOCK = 64 * 1024

OwnerT = TypeVar("OwnerT", bound="LoopbackServer")


class LoopbackServer:
    """Serves `handler` on host:port (0: any free port) from a background thread."""

    thread_name: ClassVar[str] = "loopback"  # prefix of its threads' names, port appended

    def __init__(self, handler: type[LoopbackHandler[Any]], host: str, port: int) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self.request_log: list[tuple[str, str, int]] = []
        # Unexpected handler exceptions; the servers never print, so tests assert on this.
        self.errors: list[str] = []
        # Guards the logs and each server's own state. Re-entrant: the GitLab double runs test
        # hooks under it that call back into the double.
        self._lock = threading.RLock()
        self._stopping = False
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("server already started")
        self._stopping = False
        server = _HTTPServer(self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut idle keep-alive connections and wait for their threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping = True
        server.shutdown()
        server.server_close()
        thread.join()
        self._on_stop()
        server.close_connections()
        self._server = self._thread = None

    def _on_stop(self) -> None:
        """Runs once the listener is closed, before open connections are cut."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def _log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.request_log.append((method, path, status))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 drops SYNs when dozens of clients connect at once, and a
    # dropped SYN costs a full second of retransmit delay.
    request_queue_size = 128

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        # Its own lock: the accept loop must never wait for a handler holding the owner's.
        self._connections_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__((owner.host, owner.port), owner._handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), slow on some sandboxes.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Nagle's algorithm off, as web servers have it (nginx's tcp_nodelay): a chunked
        # answer's last chunk would otherwise wait for the client's delayed acknowledgment of
        # the one before (40 ms on Linux) whenever the client does not answer at once.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Registered here, before the thread runs, so that stop() sees every connection that
        # was accepted before the listener closed.
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.owner.thread_name}-{self.server_port}-conn-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = dict(self._connections)
        # Idle keep-alive connections would otherwise keep their handler threads blocked.
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in connections.values():
            thread.join(timeout=10)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client resets, idle timeouts and whatever stop() cuts short are not the server's bugs.
        exc = sys.exc_info()[1]
        if self.owner._stopping or isinstance(exc, ConnectionError | TimeoutError):
            return
        with self.owner._lock:
            self.owner.errors.append(traceback.format_exc())


def _serve(handler: LoopbackHandler[Any]) -> None:
    handler.serve()


class LoopbackHandler(BaseHTTPRequestHandler, Generic[OwnerT]):
    """One request of an `OwnerT` server. Subclasses list `methods` and implement `serve()`."""

    protocol_version = "HTTP/1.1"
    methods: ClassVar[tuple[str, ...]] = ()
    server: _HTTPServer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # http.server dispatches on do_<METHOD>; methods not listed keep its 501 answer.
        for method in cls.methods:
            setattr(cls, f"do_{method}", _serve)

    def serve(self) -> None:
        raise NotImplementedError

    @property
    def owner(self) -> OwnerT:
        return cast(OwnerT, self.server.owner)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; stderr stays clean

    # request body ------------------------------------------------------------------------------

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def content_length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            return 0

    def has_body(self) -> bool:
        return self.chunked or self.content_length() > 0

    def body_reader(self) -> BodyReader:
        chunked = self.chunked
        return BodyReader(self.rfile, chunked, 0 if chunked else self.content_length())

    def read_body(self) -> bytes:
        return b"".join(iter(self.body_reader().read, b""))


class BodyReader:
    """Reads the request body off the socket, decoding chunked transfer encoding."""

    def __init__(self, rfile: io.BufferedIOBase, chunked: bool, length: int) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._left = length  # bytes left in the current chunk (or the whole fixed body)
        self._done = not chunked and length == 0

    @property
    def done(self) -> bool:
        return self._done

    def read(self) -> bytes:
        """Next piece of the body; b"" at its end. Raises ConnectionError if cut short."""
        if self._done:
            return b""
        if self._chunked and self._left == 0:
            self._left = self._next_chunk_size()
            if self._left == 0:
                self._read_trailers()
                self._done = True
                return b""
        data = self._rfile.read(min(self._left, _BLOCK))
        if not data:
            raise ConnectionError("client closed the connection mid-body")
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                if self._rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise ConnectionError("malformed chunked body")
            else:
                self._done = True
        return data

    def _next_chunk_size(self) -> int:
        line = self._rfile.readline(1024)
        if not line:
            raise ConnectionError("client closed the connection mid-body")
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ConnectionError(f"malformed chunk size line {line[:40]!r}") from None

    def _read_trailers(self) -> None:
        while True:
            line = self._rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                return
