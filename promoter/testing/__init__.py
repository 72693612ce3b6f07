"""Real-part test bed: git smart-HTTP server and environment-repo helpers (tests and sandbox)."""

from promoter.testing.envrepo import (
    EnvRepo,
    commit_files,
    is_linear,
    log,
    make_env_repo,
    read_file,
    rev_list_parents,
    seed_repo,
)
from promoter.testing.gitserver import (
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
