"""`promoter update ENV --image ... --chart ...`: one commit on the environment branch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from promoter.ci import RunContext
from promoter.context import read_config, scratch_repo
from promoter.errors import UsageError
from promoter.gitrepo import DEFAULT_RETRY, RetryPolicy, land
from promoter.message import Provenance, build_message, check_message, check_sha, check_url
from promoter.model import parse_chart_flag, parse_image_flag
from promoter.options import Options

if TYPE_CHECKING:
    from promoter import plan as planning
    from promoter.model import Change


@dataclass(frozen=True)
class UpdateResult:
    environment: str
    branch: str
    changes: tuple[Change, ...]
    commit: str | None
    dry_run: bool
    attempts: int
    files: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "commit": self.commit,
            "environment": self.environment,
            "branch": self.branch,
            "dry_run": self.dry_run,
            "attempts": self.attempts,
            "files": list(self.files),
            "changes": [change.as_dict() for change in self.changes],
        }


def update(
    options: Options,
    environment: str,
    images: Sequence[str] = (),
    charts: Sequence[str] = (),
    message: str | None = None,
    source_commit: str | None = None,
    source_url: str | None = None,
    run: RunContext | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> UpdateResult:
    if not images and not charts:
        raise UsageError("update: nothing to do; pass --image APP=TAG and/or --chart APP=VERSION")
    # The flags are checked before any git I/O: a bad tag is reported even if the repo is down.
    requests = [parse_image_flag(i) for i in images] + [parse_chart_flag(c) for c in charts]
    run = run or RunContext.from_env()
    subject = check_message(message) if message is not None else None
    provenance = provenance_for(run, source_commit, source_url)
    with scratch_repo(options) as repo:
        # Network first: start fetching the default branch (for promoter.yaml) and, in a
        # second scratch repo, the environment branch under its likely name env/<name>
        # (promoter.yaml's default), so both round trips run while the planning code is
        # imported, the flags are checked and the configuration is parsed. Not with
        # --config: a local configuration is validated before any git I/O.
        guess = f"env/{environment}"
        speculative = None
        if not options.config:
            repo.start_fetch_default()
            speculative = repo.prefetch(guess)
        from promoter import plan as planning

        config = read_config(options, repo)
        env = config.environment(environment)
        if speculative is not None:
            if env.branch == guess:
                repo = speculative
            else:
                speculative.discard(guess)
        edits = planning.resolve(config, environment, requests)
        if env.delivery == "pull-request":
            raise UsageError(
                f"{env.name} takes changes by pull request (delivery: pull-request), and "
                "update does not open pull requests yet: set delivery: push, or update an "
                "upstream environment"
            )
        needed = planning.files_needed(edits)
        outcome: dict[str, planning.Plan] = {}

        def make_commit(tip: str) -> str | None:
            plan = planning.apply(edits, repo.read_files(tip, needed), now)
            outcome["plan"] = plan
            if not plan.changed or options.dry_run:
                return None
            text = build_message("update", environment, plan.changes, provenance, subject)
            return repo.commit(tip, plan.files, text, run.identity, run.identity,
                               now().timestamp())  # fmt: skip

        sha, attempts = land(repo, env.branch, make_commit, policy)
    plan = outcome["plan"]
    return UpdateResult(
        environment=environment,
        branch=env.branch,
        changes=plan.changes,
        commit=sha,
        dry_run=options.dry_run,
        attempts=attempts,
        files=tuple(sorted(plan.files)),
    )


def provenance_for(
    run: RunContext, source_commit: str | None, source_url: str | None
) -> Provenance:
    """The trailers of an update: the app commit built (`--source-commit`, else the CI's),
    a link (`--source-url`), the pipeline and the actor."""
    commit = check_sha(source_commit, "--source-commit") if source_commit else None
    commit = commit or run.source_commit
    source = None
    if commit:
        source = f"{run.source_repo}@{commit}" if run.source_repo else commit
    return Provenance(
        source=source,
        source_url=check_url(source_url, "--source-url") if source_url else None,
        pipeline_url=run.pipeline_url,
        actor=run.actor,
    )
