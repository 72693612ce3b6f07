"""Network latency for the benchmarks: a TCP proxy on 127.0.0.1 that delays every byte by half
a set round-trip time in each direction, and the `latency` section that runs the lean git
script and promoter through it at 0, 30 and 100 ms.

On loopback a round trip is free, so a tool that talks in many small exchanges looks as fast
as one that talks in few. Through the proxy each request/response exchange costs one round
trip, as on a real network (bandwidth is not limited: these transfers are small).

The model is exact for latency: each chunk read from one side is written to the other side
`rtt / 2` seconds after it arrived, in order, whatever else is in flight. The proxy also counts
connections and exchanges (a client-to-server burst after the server last spoke, or the first
burst of a connection), which for HTTP/1.1 without pipelining is the number of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import repos
from bench.run import TOKEN, ArgvFn, Harness, Row, Variant, X, _progress, _with_baseline

CHUNK = 1 << 16


@dataclass
class Counts:
    connections: int = 0
    exchanges: int = 0


class LatencyProxy:
    """`with LatencyProxy(("127.0.0.1", port), rtt=0.03) as proxy: proxy.rewrite(url)`."""

    def __init__(self, target: tuple[str, int], rtt: float) -> None:
        self.target = target
        self.rtt = rtt
        self.counts = Counts()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:  # connections the client left open (keep-alive)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def rewrite(self, url: str) -> str:
        """`url` (pointing at the target) pointed at the proxy instead."""
        parts = urlsplit(url)
        netloc = f"127.0.0.1:{self.port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        return urlunsplit(parts._replace(netloc=netloc))

    def take(self) -> Counts:
        """The counts since the last call, and start counting afresh."""
        with self._lock:
            counts, self.counts = self.counts, Counts()
        return counts

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._connection, "127.0.0.1", 0)

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        with self._lock:
            self.counts.connections += 1
        turn = ["server"]  # who spoke last on this connection

        def upstream() -> None:
            if turn[0] == "server":
                with self._lock:
                    self.counts.exchanges += 1
            turn[0] = "client"

        def downstream() -> None:
            turn[0] = "server"

        try:
            await asyncio.gather(
                self._pump(client_r, server_w, upstream),
                self._pump(server_r, client_w, downstream),
            )
        except asyncio.CancelledError:
            pass  # the proxy is closing: end quietly (asyncio logs a cancelled callback task)
        finally:
            server_w.close()
            client_w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_data: Callable[[], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        delay = self.rtt / 2
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # a half-close: the other direction goes on

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(CHUNK):
                on_data()
                queue.put_nowait((loop.time() + delay, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((loop.time() + delay, b""))
        with contextlib.suppress(ConnectionError, OSError):
            await sender


# ---------------------------------------------------------------------------------- section

RTTS = (0.0, 0.030, 0.100)
OWNER = "bench"  # the forge doubles name repos owner/name: the size's repo is linked under it


def section_latency(h: Harness) -> None:
    """Lean git, promoter's git path and promoter's api path (GitHub and GitLab doubles)
    through the proxies at 0, 30 and 100 ms round trip."""
    from promoter.sandbox.github_api import GitHubApiDouble
    from promoter.sandbox.gitlab_api import GitLabApiDouble

    size = "L" if "L" in h.args.sizes else h.args.sizes[-1]
    repo = repos.ensure(size)
    apps = [1, 2, 3]
    slug = _forge_slug(repo)
    git_port = urlsplit(h.server.url).port or 80
    rows: list[Row] = []
    trips: list[str] = []
    with GitHubApiDouble(h.server, TOKEN) as github, GitLabApiDouble(h.server, TOKEN) as gitlab:
        doubles = {"github": github.api_url, "gitlab": gitlab.api_url}
        for rtt in RTTS:
            ms = f"{rtt * 1000:.0f} ms"
            ports = [git_port, *(urlsplit(url).port or 80 for url in doubles.values())]
            with contextlib.ExitStack() as stack:
                proxies = {port: stack.enter_context(LatencyProxy(("127.0.0.1", port), rtt))
                           for port in ports}  # fmt: skip
                lean = f"lean, {ms}"
                git_rows = [
                    Variant(f"promoter update, {ms}",
                            "git path: 3 pins, promoter.yaml from the repo",
                            _through(h.promoter_update(repo, apps), proxies), ratio_to=lean),
                    Variant(lean, "bench/lean.sh",
                            _through(h.script("lean.sh", repo, apps), proxies), kind="script"),
                ]  # fmt: skip
                api_rows = [
                    Variant(f"promoter update --commit-via api ({kind}), {ms}",
                            f"api path on the {kind} double: promoter.yaml, the files and the "
                            "commit through its API; no git request",
                            _through(_api_update(h, repo, apps, slug, kind, url), proxies),
                            ratio_to=lean)
                    for kind, url in doubles.items()
                ]  # fmt: skip
                variants = [*_with_baseline(h, git_rows), *api_rows]
                _progress(f"latency {ms} ")
                rows += h.compare(repo, variants)
                for variant in variants:  # one more run each, to count what the proxies saw
                    for proxy in proxies.values():
                        proxy.take()
                    h.run_once(repo, variant, -1, None)
                    seen = [proxy.take() for proxy in proxies.values()]
                    connections = sum(c.connections for c in seen)
                    exchanges = sum(c.exchanges for c in seen)
                    trips.append(f"| {variant.label} | {connections} | {exchanges} |")
                repo.reset()
                _progress("\n")
    extra = "\n".join(
        [
            "What the proxies saw in one run (TCP connections and request/response exchanges, "
            "git server and API double together; each exchange costs one round trip, each new "
            "connection one more on a real network, and TLS one or two more: the proxy does "
            "not charge those). The HTTP requests column above counts the git server's only.",
            "",
            "| row | connections | exchanges |",
            "|---|---:|---:|",
            *trips,
        ]
    )
    spec = repo.spec
    h.add_section(
        "latency",
        f"update with network latency at {size} ({spec.apps} apps, {spec.commits:,} commits)",
        "The git server and the GitHub and GitLab API doubles, each behind one of "
        "bench/latency.py's proxies, which delay every byte by half the round-trip time in "
        "each direction.",
        rows,
        extra,
    )
    by_label = {r.label: r for r in rows}
    for rtt in RTTS:
        ms = f"{rtt * 1000:.0f} ms"
        base = by_label[f"lean, {ms}"].time.median
        ratio = by_label[f"promoter update, {ms}"].time.median / base
        h.target(f"git path ≤ 1.25{X} lean at {size}, {ms} RTT", f"{ratio:.2f}{X}", ratio <= 1.25)
        limit = {0.030: 0.8, 0.100: 0.6}.get(rtt)
        if limit is not None:
            for kind in doubles:
                api = by_label[f"promoter update --commit-via api ({kind}), {ms}"].time.median
                h.target(f"api path ({kind}) ≤ {limit}{X} lean at {size}, {ms} RTT",
                         f"{api / base:.2f}{X}", api / base <= limit)  # fmt: skip


def _forge_slug(repo: repos.BenchRepo) -> str:
    """owner/name under which the git server (and so the doubles) serve `repo` too: a
    symbolic link in the repos directory, so both names are the same bare repo."""
    link = repos.REPOS / OWNER / f"{repo.name}.git"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..") / f"{repo.name}.git")
    return f"{OWNER}/{repo.name}"


def _api_update(
    h: Harness, repo: repos.BenchRepo, apps: list[int], slug: str, kind: str, api_url: str
) -> ArgvFn:
    """promoter update on the api path of the `kind` double, for the repo served as `slug`."""
    extra = ["--forge", kind, "--api-url", api_url, "--commit-via", "api"]
    argv = h.promoter_update(repo, apps, extra=extra)
    url = h.server.repo_url(repo.name)

    def with_slug(rep: int) -> tuple[list[str], dict[str, str]]:
        cmd, tags = argv(rep)
        return [h.server.repo_url(slug) if word == url else word for word in cmd], tags

    return with_slug


def _through(argv: ArgvFn, proxies: Mapping[int, LatencyProxy]) -> ArgvFn:
    """`argv` with every URL of the harness's servers pointed at their proxies."""

    def rewritten(rep: int) -> tuple[list[str], dict[str, str]]:
        cmd, tags = argv(rep)
        out = []
        for word in cmd:
            port = urlsplit(word).port if word.startswith("http://127.0.0.1:") else None
            proxy = proxies.get(port) if port is not None else None
            out.append(proxy.rewrite(word) if proxy is not None else word)
        return out, tags

    return rewritten
