"""Shared test setup: isolation from the user's environment, the git server, env repos, and a
check that fails any test whose captured output shows the test token."""

from __future__ import annotations

import base64
import itertools
import os
import re
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import EnvRepo, EnvRepoFactory, FileContent
from promoter.sandbox.envrepo import make_env_repo as _make_env_repo

# Variables through which a developer's or CI's own setup would leak into promoter's behaviour
# (forge detection, tokens, git repo discovery, credential prompts).
_DROP_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "PROMOTER_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")
_DROP_NAMES = frozenset(
    {
        "CI",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
    }
)


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name.startswith(_DROP_PREFIXES) or name in _DROP_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")


@pytest.fixture
def token() -> str:
    return TEST_TOKEN


# --- git server and env repos ------------------------------------------------------------------


@pytest.fixture(scope="session")
def _git_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    # Session scope is per xdist worker, so workers never share a server or its repos.
    with GitHttpServer(tmp_path_factory.mktemp("git-server"), TEST_TOKEN) as server:
        yield server
        _check_commit_messages(server.root)


def _check_commit_messages(root: Path) -> None:
    """Every commit message any test left in any repo of the session's server: no line of
    one may read as a workflow command (trailers and subjects are built from foreign values)."""
    import subprocess

    found = []
    for bare in sorted(root.glob("**/*.git")):
        out = subprocess.run(
            ["git", "--git-dir", str(bare), "log", "--all", "--format=%B%x00"],
            capture_output=True,
            text=True,
            errors="replace",
        ).stdout
        found += [
            f"{bare.name}: {line!r}"
            for line in out.splitlines()
            if line.strip().startswith("::") or "##[" in line
        ]
    assert not found, "a commit message holds a workflow command: " + "; ".join(found[:3])


@pytest.fixture
def git_server(_git_server_session: GitHttpServer) -> Iterator[GitHttpServer]:
    """The session's server, with faults and latency cleared after each test.

    A test fails if the server hit an unexpected exception while serving it.
    """
    server = _git_server_session
    errors_before = len(server.errors)
    yield server
    server.fail_next(0)
    server.set_latency(0)
    new_errors = server.errors[errors_before:]
    if new_errors:
        pytest.fail("git server raised while serving this test:\n" + "\n".join(new_errors))


_repo_counter = itertools.count(1)


def _sanitize(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    return cleaned.removesuffix(".git") or "x"


def _repo_name_for(nodeid: str) -> str:
    file_part, _, test_part = nodeid.partition("::")
    owner = _sanitize(Path(file_part).stem)[:40]
    repo = _sanitize(test_part.replace("::", "-"))[:60]
    return f"{owner}/{repo}-{next(_repo_counter)}"


@pytest.fixture
def env_repo(git_server: GitHttpServer, request: pytest.FixtureRequest) -> EnvRepoFactory:
    """Factory: `env_repo({"env/dev": {"a.yaml": "x: 1\\n"}})` -> a fresh seeded EnvRepo.

    Repos are named after the test (owner/repo form, like a forge) plus a counter, so a test can
    create several and a failing test's repo is easy to find under the server root.
    """

    def make(
        files_by_branch: Mapping[str, Mapping[str, FileContent]] | None = None,
        *,
        name: str | None = None,
        default_branch: str = "main",
        message: str = "seed",
    ) -> EnvRepo:
        return _make_env_repo(
            git_server,
            name or _repo_name_for(request.node.nodeid),
            files_by_branch or {},
            default_branch=default_branch,
            message=message,
        )

    return make


@pytest.fixture
def make_env_repo(env_repo: EnvRepoFactory) -> EnvRepoFactory:
    """Alias of `env_repo`, for tests that read better with a verb."""
    return env_repo


# --- API double modes --------------------------------------------------------------------------

# The API doubles (tests/forge_fixtures.py) serve full answers, or in minimal mode only the
# response fields the API description marks required (not kinder than the forge). The forge
# contract suite and the promote/wait end-to-end tests run every test that uses a double in
# both modes, but for the fan-out tests' permutations (parametrised already), which run full
# only, to keep the suite's time in check. API_MODES=full,minimal (or =minimal) in the
# environment applies the modes named to every test that uses a double.
BOTH_MODES = frozenset({"test_forge_contract.py", "test_promote.py", "test_wait.py"})
BOTH_MODES_UNLESS_PARAMETRISED = frozenset({"test_promote_fanout.py"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api_mode" not in metafunc.fixturenames:
        return
    chosen = os.environ.get("API_MODES", "")
    name = Path(str(metafunc.definition.fspath)).name
    if chosen:
        modes = [m.strip() for m in chosen.split(",") if m.strip()]
    elif name in BOTH_MODES or (
        name in BOTH_MODES_UNLESS_PARAMETRISED
        and metafunc.definition.get_closest_marker("parametrize") is None
    ):
        modes = ["full", "minimal"]
    else:
        return
    metafunc.parametrize("api_mode", modes, indirect=True)


@pytest.fixture
def api_mode(request: pytest.FixtureRequest) -> str:
    """How the API doubles answer in this test: "full" or "minimal"."""
    return str(getattr(request, "param", "full"))


# --- token leak check --------------------------------------------------------------------------

_LEAK_MESSAGE = "test token leaked into captured output"
_LEAK_SECTION = "token leak check"
_REDACTED = "***"


def _leak_forms(secret: str) -> tuple[str, ...]:
    # The raw token, and Basic-auth encodings with the usernames GitHub/GitLab clients use.
    encoded = (
        base64.b64encode(f"{user}:{secret}".encode()).decode()
        for user in ("x-access-token", "oauth2", "")
    )
    return (secret, *encoded)


_FORMS = _leak_forms(TEST_TOKEN)


def _redact(text: str) -> str:
    for form in _FORMS:
        text = text.replace(form, _REDACTED)
    return text


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _check_workflow_commands(report)
    leaky = [title for title, content in report.sections if any(f in content for f in _FORMS)]
    if leaky:
        # Later phases carry earlier phases' sections too (and -rP prints passed ones): redact
        # everywhere, so no report prints what this check complains about.
        report.sections = [(title, _redact(content)) for title, content in report.sections]
    # Blame only this phase's own output, so one leak is one failure, not also a teardown error.
    where = [title for title in leaky if title.endswith(f" {report.when}")]
    longrepr_text = report.longreprtext
    if any(f in longrepr_text for f in _FORMS):
        where.append(f"failure report ({report.when})")
    if not where:
        return report
    message = f"{_LEAK_MESSAGE}: {', '.join(where)}"
    if longrepr_text:
        message += "\n\n" + _redact(longrepr_text)
    report.longrepr = message
    report.outcome = "failed"
    if hasattr(report, "wasxfail"):
        # An expected failure must not hide a leak.
        del report.wasxfail
    report.sections.append((_LEAK_SECTION, ", ".join(where)))
    return report


# GitHub runs lines that start with `::` as workflow commands. promoter never prints one; the
# action prints `::error title=promoter ...` (its own, values escaped). Anything else in any
# test's captured output came from a value that slipped past the log guard.
_OWN_COMMAND = re.compile(r"^::error title=promoter[^:]*::")


def _check_workflow_commands(report: pytest.TestReport) -> None:
    found = [
        line
        for title, content in report.sections
        if title.endswith(f" {report.when}")
        for line in content.splitlines()
        if (line.strip().startswith("::") and not _OWN_COMMAND.match(line)) or "##[" in line
    ]
    if found and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = "a workflow command reached the output: " + repr(found[0])


_session_leaks: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the xdist controller too, where the sections arrive with the worker's report.
    for title, content in report.sections:
        if title == _LEAK_SECTION:
            _session_leaks.append(f"{report.nodeid} ({report.when}): {content}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _session_leaks:
        terminalreporter.write_sep("=", _LEAK_SECTION, red=True, bold=True)
        for line in _session_leaks:
            terminalreporter.write_line(f"{_LEAK_MESSAGE}: {line}")
