"""The strict GitHub double held to traffic recorded against api.github.com.

tests/octokit-fixtures holds `@octokit/fixtures` 23.1.2 (MIT, see its README): each scenario is
a list of requests with GitHub's answers, ids, dates and SHAs normalised. Each scenario here sets
the double's repository up to the state the recording starts from, replays every request (the
recorded method, path and body; owner/repo kept, host and prefix mapped, `/repositories/1000`
mapped to the repository, normalised SHAs mapped to real commits) and compares what GitHub
answered with what the double answers: the status code, the presence of the Link, ETag,
Location and X-RateLimit-* headers, and the response's field names and JSON types, recursively.

Every remaining difference is listed in ALLOWED with the reason it stays; an entry that no longer
differs fails the test too, so the list only ever shrinks to the truth.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import git_env, seed_repo
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.github_store import Issue, Label, now
from promoter.sandbox.openapi import GITHUB_DESCRIPTION, OpenAPISpec

FIXTURES = Path(__file__).parent / "octokit-fixtures"
OWNER = "octokit-fixture-org"
SCENARIOS = [
    "get-repository",
    "git-refs",
    "errors",
    "paginate-issues",
    "labels",
    "add-labels-to-issue",
    "get-content",
    "create-file",
]
HEADERS = ("link", "etag", "location", "x-ratelimit-limit", "x-ratelimit-remaining",
           "x-ratelimit-reset", "x-ratelimit-used", "x-ratelimit-resource")  # fmt: skip

_REFS_LIST = (
    "GET /git/refs/ (every ref) is not in GitHub's current description (git/matching-refs "
    "replaced it): the strict double refuses it like any undescribed path"
)
_NEWER = "required or listed by the current description, newer than this 2022 recording"
# "<scenario>#<step> <what>" -> why the double still differs from the recording there.
ALLOWED: dict[str, str] = {
    "get-repository#0 missing $.organization": "sandbox repositories belong to users, not orgs",
    "get-repository#0 extra $.has_discussions": _NEWER,
    "git-refs#0 status": _REFS_LIST,
    "git-refs#0 type $": _REFS_LIST,
    "git-refs#0 header etag": _REFS_LIST,
    "git-refs#3 status": _REFS_LIST,
    "git-refs#3 type $": _REFS_LIST,
    "git-refs#3 header etag": _REFS_LIST,
    "get-content#0 status": "the description's {path} cannot be empty: GET "
    "/contents/ (the root listing) is refused as undescribed; /contents/{dir} works",
    "get-content#0 type $": "as above: the root listing is refused",
    "get-content#0 header etag": "as above: the root listing is refused",
    "get-content#1 type $": "Accept: application/vnd.github.v3.raw (the raw file) is not in "
    "the description; the double answers the JSON content object",
    "create-file#0 extra $.commit.verification.verified_at": _NEWER,
}


def _load(name: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = json.loads(
        (FIXTURES / name / "normalized-fixture.json").read_text()
    )
    return steps


# --- the double and the fixtures' starting states ----------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubApiDouble]:
    spec = OpenAPISpec.load(GITHUB_DESCRIPTION, prefix="/api/v3")
    root = tmp_path_factory.mktemp("octokit")
    with GitHttpServer(root, TEST_TOKEN) as git, GitHubApiDouble(git, TEST_TOKEN, spec=spec) as api:
        yield api


def _git(bare: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(bare), *args],
        capture_output=True, text=True, check=True, env=git_env(),
    ).stdout.strip()  # fmt: skip


def _setup(api: GitHubApiDouble, scenario: str) -> tuple[str, dict[str, str]]:
    """Create the scenario's repository as the recording found it; return its name and the map
    from the recording's normalised SHAs to the double's real ones."""
    steps = _load(scenario)
    repo = re.match(rf"/repos/{OWNER}/([^/?]+)", steps[0]["path"])
    name = f"{OWNER}/{repo.group(1) if repo else scenario}"
    git: GitHttpServer = api.git
    branch = "master" if name.endswith("/hello-world") else "main"
    if api.store.repo(name) is not None:  # get-repository and get-content share hello-world
        return name, {}
    bare = git.create_repo(name, default_branch=branch)
    files = {"README.md": b"# hello-world"} if branch == "master" else {"README.md": b"seed\n"}
    seed_repo(bare, {branch: files}, message="seed")
    shas: dict[str, str] = {}
    if scenario == "git-refs":
        # 0..02 is where the recording creates `test`, 0..01 the tip it then fast-forwards to.
        first = _git(bare, "rev-parse", branch)
        tree = _git(bare, "rev-parse", f"{branch}^{{tree}}")
        second = _git(bare, "commit-tree", tree, "-p", first, "-m", "second")
        _git(bare, "update-ref", f"refs/heads/{branch}", second)
        shas = {"0" * 39 + "1": second, "0" * 39 + "2": first}
    if scenario == "labels":
        state = api.repository(name)
        for label in steps[0]["response"]:
            state.labels[label["name"].lower()] = Label(
                api.store.new_id(), label["name"], label["color"], label["description"]
            )
    if scenario == "paginate-issues":  # 13 open issues, listed 3 a page
        state = api.repository(name)
        for number in range(1, 14):
            when = now()
            state.issues[number] = Issue(number, api.store.new_id(), f"Issue {number}", None,
                                         api.login, when, when)  # fmt: skip
        state.next_number = 14
    return name, shas


# --- comparing ------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _shape(recorded: Any, ours: Any, at: str, out: list[str]) -> None:
    if _kind(recorded) != _kind(ours):
        out.append(f"type {at}")
        return
    if isinstance(recorded, dict):
        for key in recorded.keys() - ours.keys():
            out.append(f"missing {at}.{key}")
        for key in ours.keys() - recorded.keys():
            out.append(f"extra {at}.{key}")
        for key in recorded.keys() & ours.keys():
            _shape(recorded[key], ours[key], f"{at}.{key}", out)
    elif isinstance(recorded, list) and recorded and ours:
        _shape(recorded[0], ours[0], f"{at}[]", out)


def _replay(api: GitHubApiDouble, scenario: str, shas: dict[str, str]) -> dict[str, str]:
    """Each difference as "<scenario>#<step> <what>" -> what GitHub and the double answered."""
    differences: dict[str, str] = {}
    session = requests.Session()
    session.headers["Authorization"] = f"token {TEST_TOKEN}"
    for index, step in enumerate(_load(scenario)):
        path = re.sub(r"^/repositories/\d+/", f"/repos/{OWNER}/{scenario}/", step["path"])
        body = step["body"] if step["body"] != "" else None
        text = json.dumps(body) if body is not None else None
        for fake, real in shas.items():
            path = path.replace(fake, real)
            text = text.replace(fake, real) if text else text
        answer = session.request(
            step["method"].upper(),
            api.api_url + path,
            data=text,
            headers={"Content-Type": "application/json"} if text else {},
        )
        here = f"{scenario}#{index}"
        if answer.status_code != step["status"]:
            differences[f"{here} status"] = f"GitHub {step['status']}, double {answer.status_code}"
        recorded_headers = {k.lower() for k in step["headers"]}
        for header in HEADERS:
            if (header in recorded_headers) != (header in {k.lower() for k in answer.headers}):
                differences[f"{here} header {header}"] = (
                    f"sent by GitHub: {header in recorded_headers}"
                )
        if step["response"] != "" or answer.content:
            ours = answer.json() if answer.content else ""
            found: list[str] = []
            _shape(step["response"], ours, "$", found)
            differences.update({f"{here} {d}": d for d in found})
    return differences


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_double_answers_like_the_recorded_github(api: GitHubApiDouble, scenario: str) -> None:
    _, shas = _setup(api, scenario)
    differences = _replay(api, scenario, shas)
    allowed = {key for key in ALLOWED if key.startswith(f"{scenario}#")}
    unexplained = sorted(f"{key} ({differences[key]})" for key in differences.keys() - allowed)
    stale = sorted(allowed - differences.keys())
    assert not unexplained, "differences from recorded GitHub traffic:\n" + "\n".join(unexplained)
    assert not stale, "allowlisted differences that are gone (remove them):\n" + "\n".join(stale)
