"""Environment repos for the benchmarks, generated with one `git fast-import` stream each.

Layout (branch-per-environment, as promoter.yaml's `environments.dev.branch: env/dev`):

- `main` (HEAD): `promoter.yaml` describing every app (`apps/appN/values.yaml`, `image.tag`)
  and a README.
- `env/dev`: every app's files (`apps/appN/values.yaml`, `Chart.yaml`, `templates/*.yaml`, ...),
  a few hundred bytes each; the first commit writes them all, every later commit bumps one
  app's image tag, round-robin, so the history is what years of `update` runs leave behind.

Generated repos are cached under `bench/work/repos/` keyed by size name and a generator
version, so reruns only pay for generation once. The bare repos carry the same server config
as `GitHttpServer.create_repo` (filters allowed, push enabled, reverse indexes written), are
repacked with a bitmap and a commit-graph like a forge's would be, and are served by
`GitHttpServer`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitserver import GitHttpServer

# 3: the commit-graph carries changed-path Bloom filters (GitLab's `last_commit_id`).
# 4: the pack has its reverse index on disk (a .rev file, as git >= 2.41 writes by default).
GENERATOR_VERSION = 4
WORK = Path(__file__).resolve().parent / "work"
REPOS = WORK / "repos"
BRANCH = "env/dev"
ENVIRONMENT = "dev"
EPOCH = 1_600_000_000  # fixed timestamps: the same size always yields the same commits


@dataclass(frozen=True)
class Spec:
    name: str
    apps: int
    files: int  # files on env/dev (about; rounded to whole apps)
    commits: int  # commits of env/dev history
    note: str = ""


SPECS: dict[str, Spec] = {
    "S": Spec("S", apps=10, files=100, commits=100),
    "M": Spec("M", apps=200, files=5_000, commits=10_000),
    "L": Spec("L", apps=1_000, files=20_000, commits=100_000),
    # S-shaped content with long histories: isolates the cost of history depth.
    "S-10k": Spec("S-10k", apps=10, files=100, commits=10_000, note="S content"),
    "S-100k": Spec("S-100k", apps=10, files=100, commits=100_000, note="S content"),
}


@dataclass(frozen=True)
class BenchRepo:
    """A generated repo as the harness uses it."""

    spec: Spec
    path: Path  # the bare repo, under REPOS
    name: str  # the name it is served under by GitHttpServer (root REPOS)
    seed_tip: str  # env/dev as generated: the harness resets the branch here between runs
    config_file: Path  # a copy of main's promoter.yaml, for `--config` rows
    seconds: float  # generation time (0 when it came from the cache)
    cached: bool

    def reset(self) -> None:
        """Put env/dev back where generation left it (harness only; never promoter's way)."""
        _git(self.path, "update-ref", f"refs/heads/{BRANCH}", self.seed_tip)

    def tip(self) -> str:
        return _git(self.path, "rev-parse", f"refs/heads/{BRANCH}").decode().strip()

    def count(self, rev_range: str) -> int:
        return int(_git(self.path, "rev-list", "--count", rev_range).decode().strip())

    def image_file(self, app: int) -> str:
        return f"apps/app{app}/values.yaml"


# ------------------------------------------------------------------------------- content


def values_yaml(app: int, tag: str) -> bytes:
    return (
        f"# Helm values for app{app} (environment: dev)\n"
        f"replicaCount: {1 + app % 3}\n"
        "image:\n"
        f"  repository: ghcr.io/acme/app{app}\n"
        f"  tag: {tag}\n"
        "  pullPolicy: IfNotPresent\n"
        "service:\n"
        "  type: ClusterIP\n"
        f"  port: {8000 + app % 1000}\n"
        "resources:\n"
        "  requests: {cpu: 100m, memory: 128Mi}\n"
        "  limits: {cpu: 500m, memory: 256Mi}\n"
        "env:\n"
        "  - name: LOG_LEVEL\n"
        "    value: info\n"
        "  - name: OTEL_EXPORTER_OTLP_ENDPOINT\n"
        "    value: http://otel-collector.observability:4317\n"
        "podAnnotations:\n"
        f"  team: team-{app % 17}\n"
    ).encode()


def chart_yaml(app: int) -> bytes:
    return (
        "apiVersion: v2\n"
        f"name: app{app}\n"
        f"description: Deployment of app{app}\n"
        "type: application\n"
        "version: 0.1.0\n"
        "dependencies:\n"
        "  - name: common\n"
        "    version: 2.19.1\n"
        "    repository: oci://ghcr.io/acme/charts\n"
    ).encode()


def template_yaml(app: int, n: int) -> bytes:
    kind = ("ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy")[n % 5]
    return (
        "apiVersion: v1\n"
        f"kind: {kind}\n"
        "metadata:\n"
        f"  name: app{app}-part{n}\n"
        "  labels:\n"
        f"    app.kubernetes.io/name: app{app}\n"
        "    app.kubernetes.io/part-of: acme\n"
        "data:\n"
        f'  setting-{n}: "{{{{ .Values.settings.s{n} | default \\"on\\" }}}}"\n'
        f'  generated: "bench file {n} of app{app}"\n'
    ).encode()


def app_files(app: int, per_app: int) -> dict[str, bytes]:
    files = {
        f"apps/app{app}/values.yaml": values_yaml(app, "1.0.0"),
        f"apps/app{app}/Chart.yaml": chart_yaml(app),
    }
    for n in range(max(0, per_app - 2)):
        files[f"apps/app{app}/templates/part{n:02d}.yaml"] = template_yaml(app, n)
    return files


def promoter_yaml(apps: int) -> bytes:
    lines = [
        "# promoter.yaml generated by bench/repos.py",
        "environments:",
        "  dev:",
        f"    branch: {BRANCH}",
        "    gate: {require: ['argocd/*'], soak: 5m}",
        "  staging:",
        "    branch: env/staging",
        "    from: dev",
        "  prod:",
        "    branch: env/prod",
        "    from: staging",
        "    delivery: pull-request",
        "apps:",
    ]
    for app in range(apps):
        lines += [
            f"  app{app}:",
            "    images:",
            f"      app{app}: {{file: apps/app{app}/values.yaml, tag: image.tag}}",
        ]
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------- stream


def _data(blob: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(blob), blob)


def _commit(ref: str, when: int, message: str, parent: bool, body: bytes) -> bytes:
    ident = f"Bench Seed <bench@example.invalid> {when} +0000".encode()
    head = b"commit %s\nauthor %s\ncommitter %s\n" % (ref.encode(), ident, ident)
    head += _data(message.encode())
    if not parent:
        head += b"deleteall\n"
    return head + body


def stream(spec: Spec) -> Iterator[bytes]:
    per_app = max(2, spec.files // spec.apps)
    yield b"feature done\n"
    yield _commit(
        "refs/heads/main",
        EPOCH,
        "promoter.yaml",
        False,
        b"M 100644 inline promoter.yaml\n"
        + _data(promoter_yaml(spec.apps))
        + b"M 100644 inline README.md\n"
        + _data(b"# acme environments\n\nManaged by promoter.\n"),
    )
    body = bytearray()
    for app in range(spec.apps):
        for path, content in app_files(app, per_app).items():
            body += b"M 100644 inline %s\n" % path.encode() + _data(content)
    yield _commit(f"refs/heads/{BRANCH}", EPOCH, "initial layout", False, bytes(body))
    chunk = bytearray()
    for n in range(1, spec.commits):
        app = n % spec.apps
        tag = f"1.{n // spec.apps}.{n % 97}"
        values = f"apps/app{app}/values.yaml".encode()
        chunk += _commit(
            f"refs/heads/{BRANCH}",
            EPOCH + n * 60,
            f"update(dev): app{app} {tag}",
            True,
            b"M 100644 inline %s\n" % values + _data(values_yaml(app, tag)),
        )
        if len(chunk) > 1 << 20:
            yield bytes(chunk)
            chunk.clear()
    yield bytes(chunk)
    yield b"done\n"


# ------------------------------------------------------------------------------- build + cache


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=stdin,
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def _generate(spec: Spec, path: Path, log: bool) -> None:
    build_repo(path, stream(spec), spec.name, log=log)


def build_repo(
    path: Path, pieces: Iterable[bytes], name: str, drop: Iterable[str] = (), log: bool = False
) -> None:
    """A bare repo at `path` (replacing one there) from one `git fast-import` stream, kept as a
    forge keeps it: one pack with a reachability bitmap, and a commit-graph with changed-path
    Bloom filters (Gitaly's housekeeping writes them: GitLab's `last_commit_id` of a file is a
    `git log -1 -- path`, 20 ms at L without them, 1-3 ms with); HEAD on main.
    `drop`: refs the stream needed but the repo should not keep (deleted before repacking)."""
    if path.exists():
        shutil.rmtree(path)
    REPOS.mkdir(parents=True, exist_ok=True)
    GitHttpServer(REPOS, token="unused").create_repo(
        path.name.removesuffix(".git"), default_branch="main"
    )
    proc = subprocess.Popen(
        ["git", "--git-dir", str(path), "fast-import", "--quiet", "--done"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(),
    )
    assert proc.stdin is not None
    for piece in pieces:
        proc.stdin.write(piece)
    proc.stdin.close()
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"fast-import for {name} failed: {err.decode(errors='replace')}")
    for ref in drop:
        _git(path, "update-ref", "-d", ref)
    if log:
        print(f"  {name}: fast-import done, repacking", flush=True)
    _git(path, "repack", "-a", "-d", "-b", "-q")
    _git(path, "commit-graph", "write", "--reachable", "--changed-paths")
    _git(path, "symbolic-ref", "HEAD", "refs/heads/main")


def cached(
    slug: str, spec: Spec, what: str, build: Callable[[Path, Path], None], log: bool = True
) -> BenchRepo:
    """A repo of its own (not one of SPECS) generated once by `build(path, config_file)` and
    cached under REPOS as `slug` (which carries its generator's version), with a meta file
    holding env/dev's generated tip and the generation time."""
    path = REPOS / f"{slug}.git"
    meta_file = WORK / f"{slug}.json"
    config_file = WORK / f"{slug}.promoter.yaml"
    if not (meta_file.exists() and path.exists()):
        if log:
            print(f"generating {slug}: {what}", flush=True)
        start = time.perf_counter()
        build(path, config_file)
        seconds = time.perf_counter() - start
        tip = _git(path, "rev-parse", f"refs/heads/{BRANCH}").decode().strip()
        meta_file.write_text(json.dumps({"seed_tip": tip, "seconds": seconds}))
        if log:
            print(f"  generated in {seconds:.1f}s", flush=True)
    meta = json.loads(meta_file.read_text())
    return BenchRepo(spec, path, slug, meta["seed_tip"], config_file, meta["seconds"], True)


def ensure(name: str, log: bool = True) -> BenchRepo:
    """The repo for size `name`, generated (and cached) if needed."""
    spec = SPECS[name]
    REPOS.mkdir(parents=True, exist_ok=True)
    slug = f"{name.lower()}-v{GENERATOR_VERSION}"
    path = REPOS / f"{slug}.git"
    meta_file = WORK / f"{slug}.json"
    config_file = WORK / f"{slug}.promoter.yaml"
    wanted = {"spec": asdict(spec), "version": GENERATOR_VERSION}
    if meta_file.exists() and path.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("key") == wanted:
            repo = BenchRepo(spec, path, slug, meta["seed_tip"], config_file, 0.0, True)
            repo.reset()
            return repo
    if log:
        print(f"generating {name}: {spec.apps} apps, ~{spec.files} files, {spec.commits} commits",
              flush=True)  # fmt: skip
    start = time.perf_counter()
    _generate(spec, path, log)
    seconds = time.perf_counter() - start
    seed_tip = _git(path, "rev-parse", f"refs/heads/{BRANCH}").decode().strip()
    config_file.write_bytes(_git(path, "cat-file", "blob", "main:promoter.yaml"))
    meta_file.write_text(json.dumps({"key": wanted, "seed_tip": seed_tip, "seconds": seconds}))
    if log:
        print(f"  {name}: generated in {seconds:.1f}s", flush=True)
    return BenchRepo(spec, path, slug, seed_tip, config_file, seconds, False)


def generation_seconds(repo: BenchRepo) -> float:
    """How long the cached repo took to generate, as recorded when it was made."""
    meta = json.loads((WORK / f"{repo.name}.json").read_text())
    return float(meta.get("seconds", 0.0))
