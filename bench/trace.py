"""One run of promoter's `update` and of bench/lean.sh, request by request:
`python -m bench.trace [--size S] [--rtt 0.03] [--config]`.

For each HTTP request the server saw: when it started and ended (ms since the process
started), its method and path, and, from the client's GIT_TRACE_PACKET, the protocol v2
command of each POST (ls-refs, fetch) in order. Also the run's wall time, TCP connections and
exchanges through bench/latency.py's proxy, and the CPU seconds of the client process tree.
A tool for finding where the round trips go; the figures in RESULTS.md come from `python -m
bench --only latency`.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench import repos
from bench.latency import LatencyProxy
from bench.run import HERE, TOKEN
from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitserver import GitHttpServer, RequestRecord


def _env(home: Path, trace: Path) -> dict[str, str]:
    env = git_env()
    for name in list(env):
        if name.startswith(("PROMOTER_", "GITHUB_", "GITLAB_", "CI_")) or name == "CI":
            del env[name]
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(HOME=str(home), TOKEN=TOKEN, PROMOTER_TOKEN=TOKEN, GIT_TRACE_PACKET=str(trace))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _commands(trace: Path) -> list[str]:
    """The v2 commands the client sent, in order (`command=fetch` lines of the packet trace),
    with the number of `want`s and whether `done` was sent in each fetch."""
    found: list[str] = []
    if not trace.exists():
        return found
    current: list[str] | None = None
    for line in trace.read_text(errors="replace").splitlines():
        match = re.search(r"packet:\s+(\S+)> (.*)$", line)
        if not match:
            continue
        text = match[2]
        if text.startswith("command="):
            current = [text.removeprefix("command=")]
            found.append("")
        elif current is not None and text.startswith("want "):
            current.append("want")
        elif current is not None and (text in ("done", "deepen 1") or text.startswith("filter")):
            current.append(text)
        if current is not None and found:
            wants = current.count("want")
            rest = [w for w in current[1:] if w != "want"]
            found[-1] = " ".join([current[0], f"{wants}w" if wants else "", *rest]).strip()
    return found


def run(argv: list[str], env: dict[str, str], server: GitHttpServer) -> None:
    log: list[tuple[float, RequestRecord]] = []
    lock = threading.Lock()
    original = server._record

    def record(rec: RequestRecord) -> None:
        with lock:
            log.append((time.monotonic(), rec))
        original(rec)

    server._record = record  # type: ignore[method-assign,assignment]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server.wait_idle()
    server._record = original  # type: ignore[method-assign]
    if proc.returncode != 0:
        print(proc.stderr.decode(errors="replace"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  wall {wall:.3f} s, client CPU {cpu:.3f} s (process tree), exit {proc.returncode}")
    for end, rec in log:
        begin = end - rec.seconds
        where = urlsplit(rec.path)
        name = where.path.rsplit("/", 1)[-1] + (f"?{where.query}" if where.query else "")
        print(f"  {1000 * (begin - start):7.0f} {1000 * (end - start):7.0f} ms  "
              f"{rec.method:4} {name}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trace")
    parser.add_argument("--size", default="S")
    parser.add_argument("--rtt", type=float, default=0.0)
    parser.add_argument("--config", action="store_true", help="promoter with a local --config")
    parser.add_argument("--only", default="promoter,lean")
    parser.add_argument("--promoter-path", default=None, help="run promoter from DIR's package")
    args = parser.parse_args()
    repo = repos.ensure(args.size)
    server = GitHttpServer(repos.REPOS, TOKEN)
    server.start()
    target = ("127.0.0.1", urlsplit(server.url).port or 80)
    with tempfile.TemporaryDirectory() as tmp, LatencyProxy(target, args.rtt) as proxy:
        home = Path(tmp)
        url = proxy.rewrite(server.repo_url(repo.name))
        tags = [f"app{a}=7.{a}.{int(time.time())}" for a in (1, 2, 3)]
        rows = {
            "promoter": [
                str(Path(sys.executable).parent / "promoter"), "--repo", url,
                *(["--config", str(repo.config_file)] if args.config else []),
                "--output", "json", "update", repos.ENVIRONMENT,
                *(f for t in tags for f in ("--image", t)),
            ],
            "lean": [str(HERE / "lean.sh"), url, repos.BRANCH,
                     *(f"{repo.image_file(a)}=7.{a}.1" for a in (1, 2, 3))],
        }  # fmt: skip
        for label in args.only.split(","):
            repo.reset()
            trace = home / f"{label}.packets"
            proxy.take()
            print(f"{label} at {args.size}, {args.rtt * 1000:.0f} ms RTT")
            env = _env(home, trace)
            if args.promoter_path:
                env["PYTHONPATH"] = str(Path(args.promoter_path).resolve())
            run(rows[label], env, server)
            seen = proxy.take()
            print(f"  {seen.connections} connections, {seen.exchanges} exchanges; v2 commands: "
                  + ", ".join(_commands(trace)))  # fmt: skip
        repo.reset()
    server.stop()


if __name__ == "__main__":
    main()
