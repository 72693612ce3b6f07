"""The sandbox: a smart-HTTP git server, the GitHub and GitLab API doubles and an operator
simulator on 127.0.0.1, which `promoter sandbox`, `promoter demo` and the tests run against."""

from promoter.sandbox.envrepo import (
    EnvRepo,
    commit_files,
    is_linear,
    log,
    make_env_repo,
    read_file,
    rev_list_parents,
    seed_repo,
)
from promoter.sandbox.gitserver import (
    GitHttpServer,
    RequestRecord,
    auth_config_env,
    basic_auth_header,
)

# A fixed, recognisable token for tests: the leak check in tests/conftest.py fails any test whose
# captured output contains it (or its Basic-auth encoding), so it must stay distinctive.
TEST_TOKEN = "ptk_test_5f3c9a1e7b2d4c6f8a0e"

__all__ = [
    "TEST_TOKEN",
    "EnvRepo",
    "GitHttpServer",
    "RequestRecord",
    "auth_config_env",
    "basic_auth_header",
    "commit_files",
    "is_linear",
    "log",
    "make_env_repo",
    "read_file",
    "rev_list_parents",
    "seed_repo",
]
