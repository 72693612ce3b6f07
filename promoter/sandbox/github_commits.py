"""Routes of the GitHub API double about commits: statuses, check runs, deployments, with the
JSON shapes they answer in (complete enough for GitHub's own description)."""

from __future__ import annotations

from typing import Any

from promoter.sandbox.github_render import (
    REPO_LINKS,
    Json,
    Urls,
    repository,
    user,
)
from promoter.sandbox.github_routes import (
    NOT_FOUND,
    Problem,
    Reply,
    Request,
    commit_sha,
    custom,
    find_repo,
)
from promoter.sandbox.github_store import (
    CheckRun,
    Deployment,
    DeploymentStatus,
    RepoState,
    Status,
    Store,
    branch_sha,
    commits_between,
    default_branch,
    iso,
    node_id,
    now,
    resolve,
)

# --- statuses and check runs --------------------------------------------------------------------


def list_statuses(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    sha = commit_sha(repo, req.params["ref"], status=404)
    found = sorted((s for s in repo.statuses if s.sha == sha), key=lambda s: -s.id)
    return Reply(200, [status(req.urls, repo, s) for s in found], paginate=True)


def combined_status(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    sha = commit_sha(repo, req.params["ref"], status=404)
    return Reply(200, render_combined_status(req.urls, repo, sha, latest_statuses(repo, sha)))


def latest_statuses(repo: RepoState, sha: str) -> list[Status]:
    latest: dict[str, Status] = {}
    for s in sorted((s for s in repo.statuses if s.sha == sha), key=lambda s: -s.id):
        latest.setdefault(s.context.lower(), s)  # contexts are case-insensitive on GitHub
    return list(latest.values())


def create_status(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    sha = commit_sha(repo, req.params["sha"])
    description = req.field("description")
    if description is not None and len(description) > 140:
        raise custom("Status", "description is too long (maximum is 140 characters)")
    when = now()
    s = Status(
        id=store.new_id(),
        sha=sha,
        state=req.field("state"),
        context=req.field("context", "default") or "default",
        description=description,
        target_url=req.field("target_url"),
        creator=req.login,
        created_at=when,
        updated_at=when,
    )
    repo.statuses.append(s)
    body = status(req.urls, repo, s)
    return Reply(201, body, {"Location": body["url"]})


def list_check_runs(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    sha = commit_sha(repo, req.params["ref"])
    runs = sorted((c for c in repo.check_runs if c.sha == sha), key=lambda c: -c.id)
    if req.arg("filter", "latest") == "latest":  # the newest run of each name
        newest: dict[str, CheckRun] = {}
        for run in runs:
            newest.setdefault(run.name, run)
        runs = list(newest.values())
    if req.arg("check_name"):
        runs = [c for c in runs if c.name == req.arg("check_name")]
    if req.arg("status"):
        runs = [c for c in runs if c.status == req.arg("status")]
    body = {
        "total_count": len(runs),
        "check_runs": [check_run(req.urls, repo, c) for c in runs],
    }
    return Reply(200, body, paginate=True, page_key="check_runs")


# --- deployments --------------------------------------------------------------------------------


def create_deployment(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    ref = str(req.field("ref"))
    sha = resolve(repo.path, ref)
    if sha is None:
        raise Problem(422, f"No ref found for: {ref}")
    required = req.field("required_contexts")
    latest = {s.context: s.state for s in latest_statuses(repo, sha)}
    # GitHub checks every context on the ref unless told which (an empty list skips the check).
    contexts = list(latest) if required is None else required
    if any(latest.get(c) != "success" for c in contexts):
        raise Problem(409, f"Conflict: Commit status checks failed for {ref}.")
    if req.field("auto_merge", True):
        base = branch_sha(repo.path, default_branch(repo.path))
        if base and base != sha and commits_between(repo.path, sha, base):
            # Real GitHub would merge the default branch into `ref` here; the double refuses
            # rather than pretend, so callers must send auto_merge=false.
            raise Problem(409, f"Conflict merging {default_branch(repo.path)} into {ref}.")
    environment = req.field("environment", "production")
    d = Deployment(
        id=store.new_id(),
        sha=sha,
        ref=ref,
        environment=environment,
        task=req.field("task", "deploy"),
        description=req.field("description", ""),
        payload=req.field("payload", {}),
        creator=req.login,
        created_at=now(),
        production_environment=req.field("production_environment", environment == "production"),
        transient_environment=req.field("transient_environment", False),
    )
    repo.deployments[d.id] = d
    return Reply(201, deployment(req.urls, repo, d))


def list_deployments(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    found = sorted(repo.deployments.values(), key=lambda d: -d.id)
    for key in ("sha", "ref", "task", "environment"):
        if req.arg(key):
            found = [d for d in found if getattr(d, key) == req.arg(key)]
    return Reply(200, [deployment(req.urls, repo, d) for d in found], paginate=True)


def find_deployment(store: Store, req: Request) -> tuple[RepoState, Deployment]:
    repo = find_repo(store, req)
    d = repo.deployments.get(int(req.params["deployment_id"]))
    if d is None:
        raise Problem(404, NOT_FOUND)
    return repo, d


def create_deployment_status(store: Store, req: Request) -> Reply:
    repo, d = find_deployment(store, req)
    url = req.field("log_url") or req.field("target_url") or ""
    s = DeploymentStatus(
        id=store.new_id(),
        state=req.field("state"),
        description=req.field("description", ""),
        environment=req.field("environment") or d.environment,
        target_url=url,
        environment_url=req.field("environment_url", ""),
        creator=req.login,
        created_at=now(),
    )
    d.statuses.append(s)
    body = deployment_status(req.urls, repo, d, s)
    return Reply(201, body, {"Location": body["url"]})


def list_deployment_statuses(store: Store, req: Request) -> Reply:
    repo, d = find_deployment(store, req)
    body = [deployment_status(req.urls, repo, d, s) for s in reversed(d.statuses)]
    return Reply(200, body, paginate=True)


def add_check_run(store: Store, repo: RepoState, sha: str, name: str, **fields: Any) -> CheckRun:
    """Check runs are created by GitHub Apps, not by tokens: tests add them from Python."""
    when = now()
    status = fields.pop("status", "completed")
    run = CheckRun(
        id=store.new_id(),
        sha=commit_sha(repo, sha),
        name=name,
        status=status,
        conclusion=fields.pop("conclusion", "success" if status == "completed" else None),
        started_at=fields.pop("started_at", when),
        completed_at=fields.pop("completed_at", when if status == "completed" else None),
        **fields,
    )
    repo.check_runs.append(run)
    return run


# --- JSON shapes ---------------------------------------------------------------------------------


def status(u: Urls, repo: RepoState, s: Status) -> Json:
    return {
        "url": f"{u.api}/repos/{repo.name}/statuses/{s.sha}",
        "avatar_url": None,
        "id": s.id,
        "node_id": node_id("SC", str(s.id)),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "creator": user(u, s.creator),
    }


def render_combined_status(u: Urls, repo: RepoState, sha: str, latest: list[Status]) -> Json:
    states = {s.state for s in latest}
    overall = (
        "failure"
        if states & {"failure", "error"}
        else "pending"
        if "pending" in states or not states
        else "success"
    )
    return {
        "state": overall,
        "sha": sha,
        "total_count": len(latest),
        "statuses": [
            {k: v for k, v in status(u, repo, s).items() if k != "creator"} for s in latest
        ],
        "repository": _minimal_repository(u, repo),
        "commit_url": f"{u.api}/repos/{repo.name}/commits/{sha}",
        "url": f"{u.api}/repos/{repo.name}/commits/{sha}/status",
    }


def _minimal_repository(u: Urls, repo: RepoState) -> Json:
    full = repository(u, repo)
    keep = {"id", "node_id", "name", "full_name", "owner", "private", "html_url", "description"}
    keep |= {"fork", "url"} | set(REPO_LINKS)
    return {k: v for k, v in full.items() if k in keep}


def check_run(u: Urls, repo: RepoState, c: CheckRun) -> Json:
    a = f"{u.api}/repos/{repo.name}"
    return {
        "id": c.id,
        "node_id": node_id("CR", str(c.id)),
        "head_sha": c.sha,
        "external_id": str(c.id),
        "url": f"{a}/check-runs/{c.id}",
        "html_url": f"{u.web}/{repo.name}/runs/{c.id}",
        "details_url": c.details_url,
        "status": c.status,
        "conclusion": c.conclusion,
        "started_at": iso(c.started_at),
        "completed_at": iso(c.completed_at),
        "output": {
            "title": c.title,
            "summary": c.summary,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{a}/check-runs/{c.id}/annotations",
        },
        "name": c.name,
        "check_suite": {"id": c.id},
        "app": None,
        "pull_requests": [],
    }


def deployment(u: Urls, repo: RepoState, d: Deployment) -> Json:
    a = f"{u.api}/repos/{repo.name}"
    return {
        "url": f"{a}/deployments/{d.id}",
        "id": d.id,
        "node_id": node_id("DE", str(d.id)),
        "sha": d.sha,
        "ref": d.ref,
        "task": d.task,
        "payload": d.payload,
        "original_environment": d.environment,
        "environment": d.environment,
        "description": d.description,
        "creator": user(u, d.creator),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.statuses[-1].created_at if d.statuses else d.created_at),
        "statuses_url": f"{a}/deployments/{d.id}/statuses",
        "repository_url": a,
        "transient_environment": d.transient_environment,
        "production_environment": d.production_environment,
    }


def deployment_status(u: Urls, repo: RepoState, d: Deployment, s: DeploymentStatus) -> Json:
    a = f"{u.api}/repos/{repo.name}"
    return {
        "url": f"{a}/deployments/{d.id}/statuses/{s.id}",
        "id": s.id,
        "node_id": node_id("DES", str(s.id)),
        "state": s.state,
        "creator": user(u, s.creator),
        "description": s.description,
        "environment": s.environment,
        "target_url": s.target_url,
        "log_url": s.target_url,
        "environment_url": s.environment_url,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
        "deployment_url": f"{a}/deployments/{d.id}",
        "repository_url": a,
    }
