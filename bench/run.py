"""The benchmark harness: `python -m bench [--quick] [--sizes S,M,L] [--only SECTION,...]`.

Every figure is measured side by side in the same run, as subprocesses started exactly as a
user or a CI step would start them, against repos served by `GitHttpServer` over smart HTTP
with a token. Between two runs the harness puts the environment branch back where generation
left it (`git update-ref` on the bare repo), so no run sees another's commit. Variants are
interleaved, one of each per repetition in rotating order, so drift hits them alike.

Adding a row for a new command: write a `Variant` (a label, a one-line description and a
function that returns the argv for repetition i), then hand it to `Harness.compare` inside a
section function registered in `SECTIONS`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import repos
from bench.repos import BRANCH, ENVIRONMENT, BenchRepo
from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitserver import GitHttpServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
KEEP_MARKER = "<!-- Everything below this line is hand-written and kept by the harness. -->"
TOKEN = "bench_token_8d2f6a1c"
X = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"
PINS = 3  # apps pinned by one update


# ---------------------------------------------------------------------------------- figures


@dataclass
class Stat:
    """Repeated measurements of one thing (seconds, or a count)."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")

    def spread(self, unit: str = "s") -> str:
        if not self.values:
            return DASH
        return f"{_fmt(self.low, unit)}{DASH}{_fmt(self.high, unit)}"

    def show(self, unit: str = "s") -> str:
        return _fmt(self.median, unit) if self.values else DASH


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.1f}"


@dataclass
class Row:
    label: str
    what: str
    time: Stat = field(default_factory=Stat)
    requests: Stat = field(default_factory=Stat)
    attempts: Stat = field(default_factory=Stat)
    ratio_to: str | None = None  # label of the row this one is compared with


# repetition -> (argv, {file: new tag}) for one run
ArgvFn = Callable[[int], tuple[list[str], dict[str, str]]]


@dataclass
class Variant:
    label: str
    what: str
    argv: ArgvFn
    kind: str = "promoter"  # promoter | script | plain
    ratio_to: str | None = None
    repo: BenchRepo | None = None  # the repo it runs against, when not the compare() one
    env: dict[str, str] = field(default_factory=dict)  # on top of the harness environment
    settle: bool = False  # flush the page cache after each run (untimed): big checkouts


# ---------------------------------------------------------------------------------- harness


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.reps: int = args.reps
        self.home = Path(tempfile.mkdtemp(prefix="promoter-bench-home-"))
        self.env = self._env()
        self.server = GitHttpServer(repos.REPOS, TOKEN)
        self.promoter = str(Path(sys.executable).parent / "promoter")
        self.sections: list[tuple[str, str]] = []  # (title, markdown)
        self.data: dict[str, Any] = {"sections": {}}
        self.targets: list[tuple[str, str, str]] = []  # (target, figure, verdict)
        self._serial = 0

    def _env(self) -> dict[str, str]:
        env = git_env()  # no inherited GIT_*, no user/system git config, fixed identity
        for name in list(env):
            if name.startswith(("PROMOTER_", "GITHUB_", "GITLAB_", "CI_")) or name == "CI":
                del env[name]
        # Let promoter's bytecode be cached, as a pip install has it (an editable install
        # under PYTHONDONTWRITEBYTECODE would recompile every module on every run).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["HOME"] = str(self.home)
        env["XDG_CONFIG_HOME"] = str(self.home / ".config")
        env["TOKEN"] = TOKEN  # for the shell baselines
        env["PROMOTER_TOKEN"] = TOKEN
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if self.args.promoter_path:
            env["PYTHONPATH"] = str(Path(self.args.promoter_path).resolve())
        else:
            env.pop("PYTHONPATH", None)
        return env

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def tag(self) -> str:
        self._serial += 1
        return f"9.{self._serial}.0"

    # ------------------------------------------------------------------ variants

    def promoter_update(
        self, repo: BenchRepo, apps: Sequence[int], config: bool = False, extra: Sequence[str] = ()
    ) -> ArgvFn:
        def argv(rep: int) -> tuple[list[str], dict[str, str]]:
            tags = {repo.image_file(a): self.tag() for a in apps}
            cmd = [self.promoter, "--repo", self.server.repo_url(repo.name), "--output", "json"]
            if config:
                cmd += ["--config", str(repo.config_file)]
            cmd += [*extra, "update", ENVIRONMENT]
            for app in apps:
                cmd += ["--image", f"app{app}={tags[repo.image_file(app)]}"]
            return cmd, tags

        return argv

    def script(self, name: str, repo: BenchRepo, apps: Sequence[int]) -> ArgvFn:
        def argv(rep: int) -> tuple[list[str], dict[str, str]]:
            tags = {repo.image_file(a): self.tag() for a in apps}
            cmd = [str(HERE / name), self.server.repo_url(repo.name), BRANCH]
            cmd += [f"{path}={tag}" for path, tag in tags.items()]
            return cmd, tags

        return argv

    # ------------------------------------------------------------------ measuring

    def run_once(self, repo: BenchRepo | None, variant: Variant, rep: int, row: Row | None) -> None:
        argv, tags = variant.argv(rep)
        repo = variant.repo or repo
        if repo is not None:
            repo.reset()
        before = len(self.server.request_log)
        start = time.perf_counter()
        env = {**self.env, **variant.env}
        proc = subprocess.run(argv, env=env, capture_output=True, check=False)
        seconds = time.perf_counter() - start
        self.server.wait_idle()  # a request is logged just after its answer went out
        requests = len(self.server.request_log) - before
        if variant.settle:
            # Writing back tens of thousands of deleted checkout files would otherwise slow
            # down whichever run comes next.
            os.sync()
        if proc.returncode != 0:
            raise SystemExit(
                f"{variant.label} failed ({proc.returncode}):\n{' '.join(argv)}\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        attempts = None
        if variant.kind == "promoter" and tags:
            result = json.loads(proc.stdout)
            attempts = result["attempts"]
            assert result["changed"] and result["commit"] == repo.tip(), result  # type: ignore[union-attr]
        if repo is not None and tags:
            _check_landed(repo, tags)
        if row is not None:
            row.time.values.append(seconds)
            if repo is not None:
                row.requests.values.append(requests)
            if attempts is not None:
                row.attempts.values.append(attempts)

    def compare(self, repo: BenchRepo | None, variants: Sequence[Variant], reps: int | None = None,
                warmup: bool = True) -> list[Row]:  # fmt: skip
        """Each variant `reps` times, interleaved in rotating order, after one warm-up each."""
        reps = reps or self.reps
        rows = [Row(v.label, v.what, ratio_to=v.ratio_to) for v in variants]
        if warmup:
            for variant in variants:
                self.run_once(repo, variant, -1, None)
        for rep in range(reps):
            order = list(range(len(variants)))
            shift = rep % len(order)
            for i in order[shift:] + order[:shift]:
                self.run_once(repo, variants[i], rep, rows[i])
            _progress(".")
        for repo_used in {id(r): r for r in [repo, *(v.repo for v in variants)] if r}.values():
            repo_used.reset()
        return rows

    # ------------------------------------------------------------------ reporting

    def add_section(self, key: str, title: str, intro: str, rows: list[Row],
                    extra: str = "") -> None:  # fmt: skip
        by_label = {r.label: r for r in rows}
        has_requests = any(r.requests.values for r in rows)
        has_attempts = any(r.attempts.values for r in rows)
        head = f"| row | what it measures | median | min{DASH}max | ratio |"
        rule = "|---|---|---:|---:|---:|"
        if has_requests:
            head += " HTTP requests |"
            rule += "---:|"
        if has_attempts:
            head += " attempts |"
            rule += "---:|"
        lines = [intro, "", head, rule]
        for row in rows:
            base = by_label.get(row.ratio_to or "")
            ratio = f"{row.time.median / base.time.median:.2f}{X}" if base else f"1.00{X}"
            if not row.ratio_to and not any(r.ratio_to == row.label for r in rows):
                ratio = ""
            line = f"| {row.label} | {row.what} | {row.time.show()} | {row.time.spread()} "
            line += f"| {ratio} |"
            if has_requests:
                line += f" {row.requests.show('n')} |"
            if has_attempts:
                line += f" {row.attempts.show('n')} |" if row.attempts.values else " |"
            lines.append(line)
        if extra:
            lines += ["", extra]
        self.sections.append((title, "\n".join(lines)))
        self.data["sections"][key] = {
            r.label: {
                "seconds": r.time.values,
                "requests": r.requests.values,
                "attempts": r.attempts.values,
            }
            for r in rows
        }

    def target(self, what: str, figure: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "**missed**")
        self.targets.append((what, figure, verdict))


def _check_landed(repo: BenchRepo, tags: dict[str, str]) -> None:
    for path, tag in tags.items():
        text = subprocess.run(
            ["git", "--git-dir", str(repo.path), "show", f"refs/heads/{BRANCH}:{path}"],
            capture_output=True, env=git_env(), check=True,
        ).stdout.decode()  # fmt: skip
        if f"  tag: {tag}\n" not in text and f'  tag: "{tag}"\n' not in text:
            raise SystemExit(f"{path} on {BRANCH} does not carry tag {tag}:\n{text}")


def _progress(text: str) -> None:
    print(text, end="", flush=True, file=sys.stderr)


# ---------------------------------------------------------------------------------- sections


def _with_baseline(h: Harness, variants: list[Variant]) -> list[Variant]:
    """With --baseline-code DIR: each promoter row also run from DIR's code, interleaved."""
    if not h.args.baseline_code:
        return variants
    code = {"PYTHONPATH": str(Path(h.args.baseline_code).resolve())}
    label = h.args.baseline_label
    out: list[Variant] = []
    for v in variants:
        out.append(v)
        if v.kind == "promoter":
            twin = Variant(f"{v.label} [{label}]", f"{v.what}; promoter from {label}", v.argv)
            twin.kind, twin.ratio_to, twin.repo, twin.env = v.kind, v.ratio_to, v.repo, code
            out.append(twin)
    return out


def section_update(h: Harness) -> None:
    """promoter update vs the lean and naive git baselines, at each size."""
    for size in h.args.sizes:
        if size not in ("S", "M", "L"):
            continue
        repo = repos.ensure(size)
        apps = [1, 2, 3]
        variants = [
            Variant("promoter update", "3 pins; reads promoter.yaml from the repo (HEAD)",
                    h.promoter_update(repo, apps), ratio_to="lean"),
            Variant("promoter update --config", "the same with a local promoter.yaml",
                    h.promoter_update(repo, apps, config=True), ratio_to="lean"),
            Variant("lean", "bench/lean.sh: blobless sparse clone, sed, commit, push",
                    h.script("lean.sh", repo, apps), kind="script"),
        ]  # fmt: skip
        naive = Variant("naive", "bench/naive.sh: depth-1 clone with checkout, sed, commit, "
                        "push (measured after the others)", h.script("naive.sh", repo, apps),
                        kind="script", ratio_to="lean", settle=True)  # fmt: skip
        _progress(f"update {size} ")
        rows = h.compare(repo, _with_baseline(h, variants))
        rows += h.compare(repo, [naive])
        _progress("\n")
        spec = repo.spec
        h.add_section(
            f"update-{size}",
            f"update at {size} ({spec.apps} apps, {spec.files} files, {spec.commits} commits)",
            f"`update {ENVIRONMENT}` pinning 3 images, against the same branch state every run.",
            rows,
        )
        by_label = {r.label: r for r in rows}
        ratio = by_label["promoter update"].time.median / by_label["lean"].time.median
        if size == "L":
            h.target(f"update ≤ 1.25{X} lean at L", f"{ratio:.2f}{X}", ratio <= 1.25)


def section_history(h: Harness) -> None:
    """Flat in history depth: S content with 100, 10,000 and 100,000 commits."""
    variants: list[Variant] = []
    for size in ("S", "S-10k", "S-100k"):
        repo = repos.ensure(size)
        commits = f"{repo.spec.commits:,}"
        variants += [
            Variant(f"promoter update, {commits} commits", "3 pins, config from the repo",
                    h.promoter_update(repo, [1, 2, 3]), ratio_to=f"lean, {commits} commits",
                    repo=repo),
            Variant(f"lean, {commits} commits", "bench/lean.sh",
                    h.script("lean.sh", repo, [1, 2, 3]), kind="script", repo=repo),
        ]  # fmt: skip
    _progress("history ")
    # All six interleaved in one loop, so drift on the machine hits every depth alike.
    rows = h.compare(None, _with_baseline(h, variants))
    _progress("\n")
    promoter = [
        r.time.median for r in rows if r.label.startswith("promoter") and "[" not in r.label
    ]
    lean = [r.time.median for r in rows if r.label.startswith("lean")]
    spread = max(promoter) / min(promoter)
    lean_spread = max(lean) / min(lean)
    h.add_section(
        "history",
        "history depth (S content: 10 apps, 100 files)",
        "The same update against histories of 100, 10,000 and 100,000 commits.",
        rows,
        f"Spread of the medians across depths (max/min): promoter **{spread:.2f}{X}**, "
        f"lean {lean_spread:.2f}{X}.",
    )
    h.data["history_spread"] = {"promoter": spread, "lean": lean_spread}
    h.target(
        f"update ≤ 1.1{X} spread from 100 to 100,000 commits", f"{spread:.2f}{X}", spread <= 1.1
    )


def section_contention(h: Harness) -> None:
    """N concurrent promoter updates on one branch vs N serial lean pushes, per size."""
    if h.args.contention_sizes:
        sizes = h.args.contention_sizes.split(",")
    else:
        sizes = [s for s in h.args.sizes if s in ("M", "L")] or [
            max((s for s in h.args.sizes if s in ("S", "M", "L")), key="SML".index)
        ]
    rtts = [float(ms) / 1000 for ms in h.args.contention_rtts.split(",")]
    for size in sizes:
        for rtt in rtts:
            _contention(h, size, rtt)


def _contention(h: Harness, size: str, rtt: float) -> None:
    """N writers at once vs N serial lean pushes, with every request through a proxy adding
    `rtt` (none at 0): on loopback the writers share 2 CPUs with the server, so the figure is
    CPU-bound; with a round trip to pay, it is the network's, as on a real runner fleet."""
    with contextlib.ExitStack() as stack:
        _contention_at(h, size, rtt, stack)


def _contention_at(h: Harness, size: str, rtt: float, stack: contextlib.ExitStack) -> None:
    from bench.latency import LatencyProxy, _api_update, _forge_slug, _through
    from promoter.sandbox.github_api import GitHubApiDouble

    repo = repos.ensure(size)
    n = h.args.writers
    reps = 1 if h.args.quick else max(1, min(h.reps, 3))
    walls, serials, landed_counts, attempts_all = Stat(), Stat(), Stat(), Stat()
    retries = Stat()
    worst = Stat()
    requests = Stat()
    server_cpu, lean_cpu = Stat(), Stat()
    api = {"wall": Stat(), "landed": Stat(), "retries": Stat(), "worst": Stat(),
           "requests": Stat()}  # fmt: skip
    github = stack.enter_context(GitHubApiDouble(h.server, TOKEN))
    proxies: dict[int, LatencyProxy] = {}
    if rtt:
        for url in (h.server.url, github.api_url):
            port = urlsplit(url).port or 80
            proxies[port] = stack.enter_context(LatencyProxy(("127.0.0.1", port), rtt))
    slug = _forge_slug(repo)
    ms = f"{rtt * 1000:.0f} ms"
    where = f"{size}, {ms} RTT" if rtt else size
    _progress(f"contention {size} x{n} {ms} ")
    for _ in range(reps):
        # N serial lean pushes, one per app, one after another on a moving branch.
        repo.reset()
        lean_tags: dict[str, str] = {}
        h.server.wait_idle()
        lean_before = len(h.server.requests)
        start = time.perf_counter()
        for app in range(n):
            argv, tags = _through(h.script("lean.sh", repo, [app]), proxies)(0)
            subprocess.run(argv, env=h.env, capture_output=True, check=True)
            lean_tags |= tags
        serials.values.append(time.perf_counter() - start)
        h.server.wait_idle()
        lean_cpu.values.append(sum(r.cpu for r in h.server.requests[lean_before:]) / n)
        _check_landed(repo, lean_tags)
        # N promoter processes at once, one app each.
        repo.reset()
        before = len(h.server.request_log)
        runs = [_through(h.promoter_update(repo, [app]), proxies)(0) for app in range(n)]
        wall, attempts = _race(h, repo, runs, "writer")
        walls.values.append(wall)
        h.server.wait_idle()
        requests.values.append((len(h.server.request_log) - before) / n)
        server_cpu.values.append(sum(r.cpu for r in h.server.requests[before:]) / n)
        landed_counts.values.append(len(attempts))
        attempts_all.values += attempts
        retries.values.append(sum(a - 1 for a in attempts))
        worst.values.append(max(attempts, default=0))
        # The same N writers on the api path (--commit-via api, the GitHub double).
        repo.reset()
        before = len(github.request_log)
        runs = [
            _through(_api_update(h, repo, [app], slug, "github", github.api_url), proxies)(0)
            for app in range(n)
        ]
        wall, attempts = _race(h, repo, runs, "api writer")
        api["wall"].values.append(wall)
        api["requests"].values.append((len(github.request_log) - before) / n)
        api["landed"].values.append(len(attempts))
        api["retries"].values.append(sum(a - 1 for a in attempts))
        api["worst"].values.append(max(attempts, default=0))
        _progress(".")
    repo.reset()
    _progress("\n")
    ratio = walls.median / serials.median
    api_ratio = api["wall"].median / serials.median
    table = [
        f"{n} `promoter update` processes started at once on `{BRANCH}` of {size}, one app each, "
        f"vs {n} `bench/lean.sh` runs one after another ({reps} repetition(s))"
        + (
            f"; every request through bench/latency.py's proxy at {ms} round trip."
            if rtt
            else "; on loopback, where the writers and the server share the machine's CPUs."
        ),
        "",
        f"| figure | what it measures | median | min{DASH}max |",
        "|---|---|---:|---:|",
        f"| landed | writers whose commit is on the branch (of {n}) | "
        f"{landed_counts.show('n')}/{n} | {landed_counts.spread('n')} |",
        f"| wall, {n} concurrent promoter | first start to last exit | {walls.show()} | "
        f"{walls.spread()} |",
        f"| wall, {n} serial lean | sum of {n} lean pushes in a row | {serials.show()} | "
        f"{serials.spread()} |",
        f"| ratio | concurrent promoter / serial lean | {ratio:.2f}{X} | |",
        f"| retries | lost races re-planned, all writers of one repetition | "
        f"{retries.show('n')} | {retries.spread('n')} |",
        f"| attempts per writer | `attempts` from `--output json` | "
        f"{attempts_all.show('n')} | {attempts_all.spread('n')} |",
        f"| worst writer | most attempts one writer needed | {worst.show('n')} | "
        f"{worst.spread('n')} |",
        f"| HTTP requests per writer | from the server's request log | {requests.show('n')} | "
        f"{requests.spread('n')} |",
        f"| server CPU per writer | its git processes' CPU seconds (os.wait4), from the "
        f"request log | {server_cpu.show()} | {server_cpu.spread()} |",
        f"| server CPU per lean push | the same for the serial lean pushes | {lean_cpu.show()} | "
        f"{lean_cpu.spread()} |",
        f"| landed, api path | `--commit-via api` on the GitHub double, {n} at once (of {n}) | "
        f"{api['landed'].show('n')}/{n} | {api['landed'].spread('n')} |",
        f"| wall, {n} concurrent api path | first start to last exit | {api['wall'].show()} | "
        f"{api['wall'].spread()} |",
        f"| ratio, api path | concurrent api path / serial lean | {api_ratio:.2f}{X} | |",
        f"| retries, api path | lost races (expectedHeadOid refused) re-planned | "
        f"{api['retries'].show('n')} | {api['retries'].spread('n')} |",
        f"| worst writer, api path | most attempts one writer needed | {api['worst'].show('n')} "
        f"| {api['worst'].spread('n')} |",
        f"| API requests per writer | from the double's request log | "
        f"{api['requests'].show('n')} | {api['requests'].spread('n')} |",
    ]
    h.sections.append((f"{n} concurrent updates on one branch ({where})", "\n".join(table)))
    h.data["sections"][f"contention-{size}" + (f"-{ms.replace(' ', '')}" if rtt else "")] = {
        "size": size, "rtt": rtt, "writers": n, "landed": landed_counts.values,
        "wall": walls.values, "serial_lean": serials.values, "attempts": attempts_all.values,
        "retries": retries.values, "requests_per_writer": requests.values,
        "server_cpu_per_writer": server_cpu.values, "server_cpu_per_lean": lean_cpu.values,
        "api": {key: stat.values for key, stat in api.items()},
    }  # fmt: skip
    all_landed = landed_counts.low == n
    h.target(f"{n}/{n} concurrent updates land ({where})", f"{landed_counts.show('n')}/{n} "
             f"(worst {landed_counts.low:.0f})", all_landed)  # fmt: skip
    h.target(f"{n} concurrent ≤ 1.5{X} {n} serial lean pushes ({where})", f"{ratio:.2f}{X}",
             ratio <= 1.5)  # fmt: skip
    h.target(f"{n}/{n} concurrent api-path updates land ({where})",
             f"{api['landed'].show('n')}/{n} (worst {api['landed'].low:.0f})",
             api["landed"].low == n)  # fmt: skip


def _race(
    h: Harness, repo: BenchRepo, runs: list[tuple[list[str], dict[str, str]]], what: str
) -> tuple[float, list[int]]:
    """Start every run at once on `repo`'s branch: (first start to last exit, the `attempts`
    each writer that landed reports). When all landed, their tags are checked on the branch,
    one commit each."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(argv, env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for argv, _ in runs
    ]
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    attempts: list[int] = []
    for proc, (out, err) in zip(procs, outs, strict=True):
        if proc.returncode == 0:
            attempts.append(json.loads(out)["attempts"])
        else:
            _progress(f"\n  {what} failed ({proc.returncode}): {err.decode()[-300:]}\n")
    if len(attempts) == len(runs):
        _check_landed(repo, {k: v for _, tags in runs for k, v in tags.items()})
        assert repo.count(f"{repo.seed_tip}..refs/heads/{BRANCH}") == len(runs)
    return wall, attempts


def section_startup(h: Harness) -> None:
    """Cold start of the CLI, with the interpreter's own start as the baseline row."""
    python = sys.executable
    variants = [
        Variant("python -c pass", "the interpreter alone",
                lambda _: ([python, "-c", "pass"], {}), kind="plain"),
        Variant("promoter --version", "console script, click group, version option",
                lambda _: ([h.promoter, "--version"], {}), kind="plain", ratio_to="python -c pass"),
        Variant("promoter --help", "console script, full help text",
                lambda _: ([h.promoter, "--help"], {}), kind="plain", ratio_to="python -c pass"),
        Variant("promoter update --help", "the update command's help",
                lambda _: ([h.promoter, "update", "--help"], {}), kind="plain",
                ratio_to="python -c pass"),
    ]  # fmt: skip
    _progress("startup ")
    rows = h.compare(None, variants, reps=max(h.reps * 2, 5))
    _progress("\n")
    h.add_section("startup", "cold start", "Process start to exit, no git I/O.", rows)
    help_row = rows[2].time.median
    h.target("`--help` ≤ 0.3 s", f"{help_row:.3f} s", help_row <= 0.3)


def section_requests(h: Harness) -> None:
    """HTTP requests of one update, from the server's log: a summary of the update rows."""
    tables = {k: v for k, v in h.data["sections"].items() if k.startswith("update-")}
    if not tables:
        return
    labels = list(next(iter(tables.values())))
    lines = [
        "Requests the git server saw for one run (median), from `GitHttpServer.request_log`.",
        "",
        "| size | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for key, rows in tables.items():
        cells = [
            _fmt(statistics.median(rows[label]["requests"]), "n")
            if rows.get(label, {}).get("requests")
            else DASH
            for label in labels
        ]
        lines.append(f"| {key.removeprefix('update-')} | " + " | ".join(cells) + " |")
    h.sections.append(("HTTP requests per update", "\n".join(lines)))


def section_forge(h: Harness) -> None:
    """API economy of `wait` and of each forge operation, from the API doubles' request logs."""
    from bench.api_economy import measure

    text, targets = measure()
    h.sections.append(("forge API economy", text))
    for what, figure, ok in targets:
        h.target(what, figure, ok)


def section_status(h: Harness) -> None:
    """`promoter status` on 500 apps x 5 environments vs the git floor (bench/status.py)."""
    from bench.status import section_status as measure

    measure(h)


def section_history_command(h: Harness) -> None:
    """`promoter history dev --limit 50` on 100,000 commits vs `git log -50` (blobless clone),
    in bench/history_cmd.py."""
    from bench.history_cmd import section_history_command as measure

    measure(h)


def section_metrics(h: Harness) -> None:
    """`promoter metrics` over 90 days x 20 deployments a day on 5 environments, with the
    statuses on the GitHub double, vs git log and a plain status read (bench/metrics.py)."""
    from bench.metrics import section_metrics as measure

    measure(h)


def section_latency(h: Harness) -> None:
    """Lean git and promoter through a latency-injecting proxy (bench/latency.py)."""
    from bench.latency import section_latency as measure

    measure(h)


SECTIONS: dict[str, Callable[[Harness], None]] = {
    "update": section_update,
    "history": section_history,
    "contention": section_contention,
    "startup": section_startup,
    "requests": section_requests,
    "forge": section_forge,
    "status": section_status,
    "history-command": section_history_command,
    "latency": section_latency,
    "metrics": section_metrics,
}


# ---------------------------------------------------------------------------------- report


def _version(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False).stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_report(h: Harness, command: str, generated: list[BenchRepo], elapsed: float) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {now} in {elapsed:.0f} s.",
        "",
        f"- Machine: {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} "
        f"{platform.release()}",
        f"- {_version(['git', '--version'])}; Python {platform.python_version()}",
        f"- Repetitions: {h.reps} per row unless stated (median, and min{DASH}max); variants "
        "interleaved; one untimed warm-up run each; branch reset between runs.",
        "- Server: `promoter.sandbox.GitHttpServer` (git http-backend, token auth) on 127.0.0.1 "
        "in the harness process; clients are separate processes.",
        "- Ratios are of medians.",
        *(
            [f"- promoter code: `{h.args.promoter_path}` (`--promoter-path`)"]
            if h.args.promoter_path
            else []
        ),
        *(
            [
                f"- Rows marked [{h.args.baseline_label}] run the promoter package in "
                f"`{h.args.baseline_code}` (`--baseline-code`), interleaved with the others."
            ]
            if h.args.baseline_code
            else []
        ),
        "",
        "## Targets (issue 6)",
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
        *[f"| {t} | {f} | {v} |" for t, f, v in h.targets],
        "",
        "## Repos",
        "",
        "| size | apps | files | commits | generation (one fast-import stream, repack) |",
        "|---|---:|---:|---:|---:|",
    ]
    for repo in generated:
        seconds = repos.generation_seconds(repo)
        head.append(
            f"| {repo.spec.name} | {repo.spec.apps:,} | {repo.spec.files:,} | "
            f"{repo.spec.commits:,} | {seconds:.1f} s |"
        )
    body = [f"\n## {title}\n\n{text}" for title, text in h.sections]
    return "\n".join(head) + "\n" + "\n".join(body) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (2), S and M")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per row (default 5)")
    parser.add_argument("--sizes", default=None, help="comma-separated: S,M,L (default all)")
    names = ",".join(SECTIONS)
    parser.add_argument("--only", default=names, help=f"sections (default all): {names}")
    parser.add_argument("--writers", type=int, default=32, help="concurrent writers (32)")
    parser.add_argument(
        "--contention-sizes",
        default=None,
        help="sizes for the writers (default: M and L of --sizes)",
    )
    parser.add_argument(
        "--contention-rtts",
        default="0,100",
        help="round trips in ms for the writers, through bench/latency.py's proxy (0,100)",
    )
    parser.add_argument(
        "--promoter-path",
        default=None,
        metavar="DIR",
        help="run the promoter package found in DIR (e.g. an older checkout's "
        "tree) instead of the installed one; the harness itself is unchanged",
    )
    parser.add_argument(
        "--baseline-code",
        default=None,
        metavar="DIR",
        help="also run every promoter row from the promoter package in DIR "
        "(e.g. the tree before a change), interleaved: before/after rows",
    )
    parser.add_argument("--baseline-label", default="before", help="label of those rows")
    parser.add_argument(
        "--raw",
        type=Path,
        default=repos.WORK / "last.json",
        help="where to write the raw figures (bench/work/last.json)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="report file")
    parser.add_argument("--no-report", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args(argv)
    args.reps = args.reps or (2 if args.quick else 5)
    args.sizes = (args.sizes or ("S,M" if args.quick else "S,M,L")).split(",")
    unknown = [s for s in args.sizes if s not in repos.SPECS]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; known: {', '.join(repos.SPECS)}")
    only = args.only.split(",")
    if any(s not in SECTIONS for s in only):
        parser.error(f"--only takes {', '.join(SECTIONS)}")

    started = time.perf_counter()
    wanted = list(args.sizes)
    if "history" in only:
        wanted += [s for s in ("S", "S-10k", "S-100k") if s not in wanted]
    generated = [repos.ensure(s) for s in wanted]
    h = Harness(args)
    h.server.start()
    try:
        for name in only:
            SECTIONS[name](h)
    finally:
        h.close()
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    report = write_report(h, command.strip(), generated, time.perf_counter() - started)
    raw = args.raw
    raw.write_text(json.dumps(h.data, indent=1))
    if args.no_report:
        print(report)
        return
    kept = ""
    if args.output.exists():
        old = args.output.read_text()
        if KEEP_MARKER in old:
            kept = old[old.index(KEEP_MARKER) :]
    args.output.write_text(report + ("\n" + kept if kept else f"\n{KEEP_MARKER}\n"))
    print(f"wrote {args.output} (raw figures in {raw})")
