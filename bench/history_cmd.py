"""The `history` command's figure: `promoter history dev --limit 50` on a 100,000-commit branch,
against `git log -50` on a blobless clone of the same depth.

Repo (one `git fast-import` stream, cached under bench/work/repos/ like bench/repos.py's): L's
content (1,000 apps, 20,000 files on `env/dev`, promoter.yaml on `main`) and 100,000 commits
of history, as years of promoter runs and people leave them: of every ten commits, one is a
person's (another author, no trailers: a replica count and a template), two are merges of a
`promoter/update-dev` pull request (the merged commit carries the trailers), seven are plain
promoter commits with trailers (Environment, Change, Source, Pipeline, Actor). So the last 50
commits hold 5 manual changes (files from diff-tree), 10 merges (their second parent's
trailers) and 35 promoter commits. The run checks those numbers before timing anything.

Rows: `promoter history dev --limit 50` (table; config from the repo), the same with a local
`--config`, the same on plain L (its commits carry no trailers: all 50 are manual changes, so
every one is diffed), and `git log -50`: `git clone --bare --filter=blob:none --depth 51
--single-branch` then `git log --first-parent -50 --raw` (the commits, their messages and the
files each touched), the least git does for the same answer.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench import repos
from bench.repos import REPOS, BenchRepo, Spec

if TYPE_CHECKING:
    from bench.run import Harness

# 2: packs with their reverse index on disk (GitHttpServer's repo config, git >= 2.41's default).
VERSION = 2
APPS = 1_000
FILES = 20_000
COMMITS = 100_000
LIMIT = 50
EPOCH = 1_600_000_000
SLUG = f"history-l-v{VERSION}"
X = "\N{MULTIPLICATION SIGN}"


def _kind(n: int) -> str:
    """What commit n (1-based, after the initial layout) is."""
    if n % 10 == 0:
        return "manual"
    return "merge" if n % 10 in (3, 7) else "promoter"


def _values(app: int, tag: str, replicas: int) -> bytes:
    text = repos.values_yaml(app, tag).decode()
    return text.replace(f"replicaCount: {1 + app % 3}\n", f"replicaCount: {replicas}\n").encode()


def _trailers(app: int, old: str, tag: str, n: int) -> str:
    return (
        f"update(dev): app{app} {tag}\n\n"
        "Promoter-Environment: dev\n"
        f"Promoter-Change: app{app}/app{app} image.tag {old} -> {tag}\n"
        f"Promoter-Source: acme/app{app}@{n:040x}\n"
        f"Promoter-Pipeline: https://ci.example/acme/app{app}/actions/runs/{n}\n"
        "Promoter-Actor: ci-bot\n"
    )


def _commit(ref: str, when: int, who: str, message: str, body: bytes, extra: bytes = b"") -> bytes:
    ident = f"{who} {when} +0000".encode()
    head = b"commit %s\n" % ref.encode() + extra
    head += b"author %s\ncommitter %s\n" % (ident, ident) + repos._data(message.encode())
    return head + body


def stream() -> Iterator[bytes]:
    bot = "ci-bot <ci-bot@users.noreply.example>"
    yield b"feature done\n"
    main = b"M 100644 inline promoter.yaml\n" + repos._data(repos.promoter_yaml(APPS))
    main += b"M 100644 inline README.md\n" + repos._data(b"# acme environments\n")
    yield repos._commit("refs/heads/main", EPOCH, "promoter.yaml", False, main)
    body = bytearray()
    per_app = FILES // APPS
    for app in range(APPS):
        for path, content in repos.app_files(app, per_app).items():
            body += b"M 100644 inline %s\n" % path.encode() + repos._data(content)
    yield repos._commit("refs/heads/env/dev", EPOCH, "initial layout", False, bytes(body))
    tags = ["1.0.0"] * APPS
    replicas = [1 + app % 3 for app in range(APPS)]
    chunk = bytearray()
    for n in range(1, COMMITS):
        when = EPOCH + n * 60
        app = (n * 7) % APPS
        values = f"apps/app{app}/values.yaml".encode()
        kind = _kind(n)
        if kind == "manual":
            replicas[app] = 1 + (replicas[app] % 5)
            template = f"apps/app{app}/templates/part00.yaml".encode()
            edit = b"M 100644 inline %s\n" % values + repos._data(
                _values(app, tags[app], replicas[app])
            ) + b"M 100644 inline %s\n" % template + repos._data(
                repos.template_yaml(app, 0) + f"# tuned {n}\n".encode()
            )  # fmt: skip
            chunk += _commit("refs/heads/env/dev", when, "Jane Doe <jane@example.invalid>",
                             f"Tune app{app}: {replicas[app]} replicas", edit)  # fmt: skip
        else:
            old, tags[app] = tags[app], f"1.{n // APPS}.{n % 97}"
            edit = b"M 100644 inline %s\n" % values + repos._data(
                _values(app, tags[app], replicas[app])
            )
            message = _trailers(app, old, tags[app], n)
            if kind == "promoter":
                chunk += _commit("refs/heads/env/dev", when, bot, message, edit)
            else:
                # The pull request's one commit on promoter/update-dev, then its merge.
                chunk += _commit("refs/heads/promoter/update-dev", when - 30, bot, message,
                                 b"from refs/heads/env/dev\n" + edit, b"mark :1\n")  # fmt: skip
                merge = (f"Merge pull request #{n} from acme/promoter/update-dev\n\n"
                         f"update(dev): app{app} {tags[app]}")  # fmt: skip
                chunk += _commit("refs/heads/env/dev", when, "Rita Reviewer <rita@example.invalid>",
                                 merge, b"merge :1\n" + edit)  # fmt: skip
        if len(chunk) > 1 << 20:
            yield bytes(chunk)
            chunk.clear()
    yield bytes(chunk)
    yield b"done\n"


def ensure(log: bool = True) -> BenchRepo:
    """The repo, generated once and cached (by VERSION). History writes nothing, so
    BenchRepo's reset() (env/dev back at its tip) is a no-op here."""
    from bench.repos import _git, build_repo

    spec = Spec("history L", apps=APPS, files=FILES, commits=COMMITS, note="with trailers")

    def build(path: Path, config_file: Path) -> None:
        # The merged promoter branch is deleted, as after a merge.
        build_repo(path, stream(), SLUG, drop=["refs/heads/promoter/update-dev"])
        config_file.write_bytes(_git(path, "cat-file", "blob", "main:promoter.yaml"))

    return repos.cached(SLUG, spec, f"{APPS} apps, {FILES} files, {COMMITS} commits", build, log)


# `git log -50` on a blobless clone just deep enough; the token as an http.extraHeader.
FLOOR = r"""
set -eu
url=$1 count=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
git clone --quiet --bare --filter=blob:none --depth $((count + 1)) --single-branch \
    --branch env/dev "$url" "$dir/r.git"
git --git-dir "$dir/r.git" log --first-parent -n "$count" --no-renames --raw --no-abbrev \
    --format='commit %H %ct %an%n%B' env/dev > "$dir/log"
test "$(grep -c '^commit ' "$dir/log")" -eq "$count"
"""


def _check(h: Harness, argv: list[str], manual: int, merges: int) -> None:
    """One untimed run: the entries the repo was built with, or the figure means nothing."""
    proc = subprocess.run(argv, env=h.env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"promoter history failed:\n{proc.stderr.decode(errors='replace')}")
    entries = json.loads(proc.stdout)["entries"]
    found = (
        len(entries),
        sum(e["kind"] == "manual" for e in entries),
        sum(e["merged_commit"] is not None for e in entries),
        sum(bool(e["files"]) for e in entries if e["kind"] == "manual"),
    )
    if found != (LIMIT, manual, merges, manual):
        raise SystemExit(f"promoter history saw (entries, manual, merges, manual with files) = "
                         f"{found}; expected {(LIMIT, manual, merges, manual)}")  # fmt: skip


def section_history_command(h: Harness) -> None:
    """`promoter history dev --limit 50` at 100,000 commits vs `git log -50` (blobless)."""
    from bench.run import Variant

    repo = ensure()
    plain = repos.ensure("L")
    url, plain_url = h.server.repo_url(repo.name), h.server.repo_url(plain.name)
    base = [h.promoter, "--repo", url, "--forge", "none"]
    on_plain = [h.promoter, "--repo", plain_url, "--forge", "none"]
    limit = ["history", repos.ENVIRONMENT, "--limit", str(LIMIT)]
    _check(h, [*base, "--output", "json", *limit], manual=LIMIT // 10, merges=LIMIT // 5)
    _check(h, [*on_plain, "--output", "json", *limit], manual=LIMIT, merges=0)
    variants = [
        Variant(f"promoter history --limit {LIMIT}",
                "table; config from the repo; 35 promoter commits, 10 merged PRs, 5 manual",
                lambda _: ([*base, *limit], {}), kind="plain", ratio_to=f"git log -{LIMIT}"),
        Variant(f"promoter history --limit {LIMIT} --config", "the same with a local promoter.yaml",
                lambda _: ([*base, "--config", str(repo.config_file), *limit], {}), kind="plain",
                ratio_to=f"git log -{LIMIT}"),
        Variant(f"promoter history --limit {LIMIT}, no trailers",
                "plain L (100,000 commits without trailers): 50 manual changes, each diffed",
                lambda _: ([*on_plain, *limit], {}), kind="plain", repo=plain,
                ratio_to=f"git log -{LIMIT}"),
        Variant(f"git log -{LIMIT}", f"clone --bare --filter=blob:none --depth {LIMIT + 1}, then "
                f"log --first-parent -{LIMIT} --raw",
                lambda _: (["sh", "-c", FLOOR, "floor", url, str(LIMIT)], {}), kind="script"),
    ]  # fmt: skip
    _progress("history command ")
    rows = h.compare(repo, variants)
    _progress("\n")
    by_label = {r.label: r for r in rows}
    seconds = by_label[f"promoter history --limit {LIMIT}"].time.median
    ratio = seconds / by_label[f"git log -{LIMIT}"].time.median
    h.add_section(
        "history-command",
        f"history --limit {LIMIT} at {COMMITS:,} commits",
        f"`promoter history dev --limit {LIMIT}` on a branch of {COMMITS:,} commits and "
        f"{FILES:,} files ({APPS:,} apps), fetched {LIMIT + 1} commits deep (commits and trees, "
        "no blob). Nothing is written.",
        rows,
    )
    h.target(f"history --limit {LIMIT} on {COMMITS:,} commits ≤ 1 s",
             f"{seconds:.2f} s ({ratio:.2f}{X} git log -{LIMIT})", seconds <= 1.0)  # fmt: skip


def _progress(text: str) -> None:
    import sys

    print(text, end="", flush=True, file=sys.stderr)


def main() -> None:
    """`python -m bench.history_cmd`: generate the repo and print one timing of each row."""
    import os
    import sys

    repo = ensure()
    from promoter.sandbox.gitserver import GitHttpServer

    with GitHttpServer(REPOS, "bench_token") as server:
        env = {**os.environ, "PROMOTER_TOKEN": "bench_token", "TOKEN": "bench_token"}
        url = server.repo_url(repo.name)
        runs = {
            "promoter": [sys.executable, "-m", "promoter", "--repo", url, "--forge", "none",
                         "history", "dev", "--limit", str(LIMIT)],
            "git log": ["sh", "-c", FLOOR, "floor", url, str(LIMIT)],
        }  # fmt: skip
        for name, argv in runs.items():
            start = time.perf_counter()
            proc = subprocess.run(argv, env=env, capture_output=True, check=False)
            print(f"{name}: {time.perf_counter() - start:.3f} s, exit {proc.returncode}")
            if proc.returncode:
                sys.stdout.write(proc.stderr.decode())


if __name__ == "__main__":
    main()
