"""`promoter validate`: promoter.yaml is valid, and every pin resolves on every environment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from promoter.config import ChartPin, Config, ImagePin, file_for
from promoter.context import read_config, scratch_repo
from promoter.errors import EditError, UsageError
from promoter.options import Options
from promoter.plan import Edit, chart_lock_for
from promoter.yamledit import KeyPath, format_key_path, get_scalar


@dataclass(frozen=True)
class Validation:
    environments: tuple[str, ...]
    apps: tuple[str, ...]
    checked: int  # pin keys located in files
    problems: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "environments": list(self.environments),
            "apps": list(self.apps),
            "checked": self.checked,
            "problems": list(self.problems),
        }


class ValidationFailed(UsageError):
    def __init__(self, result: Validation) -> None:
        count = len(result.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found")
        self.result = result


def validate(options: Options) -> Validation:
    """Raises ConfigError for an invalid promoter.yaml; returns problems found in the repo."""
    if not options.repo:
        config = read_config(options, None)
        return Validation(tuple(config.environments), tuple(config.apps), 0)
    with scratch_repo(options) as repo:
        config = read_config(options, repo)
        problems: list[str] = []
        checked = 0
        for branch, envs in _branches(config).items():
            tip = repo.fetch(branch)
            keys = [(env, key) for env in envs for key in _pin_keys(config, env)]
            wanted = {key.file for _, key in keys}
            wanted |= {lock for _, key in keys if (lock := chart_lock_for(key))}
            contents = repo.read_files(tip, wanted)
            for env, key in keys:
                checked += 1
                problem = _check_key(key, contents.get(key.file))
                line = f"{env} ({branch}): {problem}"
                if problem and line not in problems:  # a missing file is one problem
                    problems.append(line)
            problems += _check_locks(branch, keys, contents)
    return Validation(tuple(config.environments), tuple(config.apps), checked, tuple(problems))


def _branches(config: Config) -> dict[str, list[str]]:
    branches: dict[str, list[str]] = {}
    for env in config.environments.values():
        branches.setdefault(env.branch, []).append(env.name)
    return branches


def _pin_keys(config: Config, env: str) -> Iterator[Edit]:
    for app in config.apps.values():
        pins: list[ImagePin | ChartPin] = [*app.images.values()]
        if app.chart is not None:
            pins.append(app.chart)
        for pin in pins:
            for key in _keys(pin):
                yield Edit(app.name, pin.label, file_for(pin.file, env), pin.doc, key, "")


def _keys(pin: ImagePin | ChartPin) -> list[KeyPath]:
    if isinstance(pin, ChartPin):
        return [pin.version]
    return [k for k in (pin.tag, pin.digest, pin.repository, pin.ref) if k is not None]


def _check_key(key: Edit, data: bytes | None) -> str | None:
    where = f"{key.file}: {format_key_path(key.key)} (pin {key.pin})"
    if data is None:
        return f"{key.file} does not exist (pin {key.pin})"
    try:
        get_scalar(data.decode("utf-8"), key.key, key.doc)
    except UnicodeDecodeError:
        return f"{key.file} is not UTF-8 text (pin {key.pin})"
    except EditError as err:
        return f"{key.file}: {err} (pin {key.pin})" if str(err) else where
    return None


def _check_locks(
    branch: str, keys: list[tuple[str, Edit]], contents: dict[str, bytes | None]
) -> list[str]:
    from promoter.helmlock import check_lock

    problems = []
    seen = set()
    for _, key in keys:
        lock = chart_lock_for(key)
        if lock is None or lock in seen or contents.get(lock) is None:
            continue
        seen.add(lock)
        chart, lock_text = contents.get(key.file), contents[lock]
        if chart is None or lock_text is None:
            continue
        problem = check_lock(chart.decode("utf-8", "replace"), lock_text.decode("utf-8", "replace"))
        if problem:
            problems.append(f"{branch}: {lock}: {problem}")
    return problems
