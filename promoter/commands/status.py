"""`promoter status [--env E ...] [--format table|markdown|json]`: apps x environments.

For every environment shown: its branch head (short SHA, age from the commit time), the gate
on that head (read from the forge as `wait` reads it; omitted without a forge), and every pin's
value. Two marks compare an environment with its upstream (`from:`):

- **promotion pending**: the upstream's value of the pin differs from this one, so
  `promote --to ENV` would carry it;
- **drift**: pending, and this environment's value is not one the upstream branch ever held:
  no commit of the upstream's first-parent history (its tip and the commits before it, searched
  64, then 512 deep, and only while some value is still unexplained) has that value at
  the upstream's pin. No promotion from the upstream can have brought it (a hotfix made here, a
  value written by hand); an environment that merely lags holds a value its upstream had.

Read path: promoter.yaml, then every branch concerned (the shown environments and their
upstreams; a branch shared by several environments, as in folder-per-environment layouts,
counts once) in one shallow blobless fetch, their pinned files in one batched blob fetch, each
distinct blob parsed once; the upstream history (commits and trees, no file contents) only when
something differs, and then only the versions of the differing files. Gates: one statuses read
per distinct head commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from promoter.context import read_config, resolve_token, scratch_repo
from promoter.errors import EditError, PromoterError
from promoter.model import show_value
from promoter.options import Options
from promoter.promotion import PinKey, pin_keys
from promoter.sinks import md_code, md_text

if TYPE_CHECKING:
    from promoter.config import Config, Environment
    from promoter.forge.base import CommitStatus, Forge
    from promoter.gates import GateResult
    from promoter.gitrepo import GitRepo
    from promoter.windows import WindowState

# How far back an upstream branch is searched for a value (commits and trees only). Two steps:
# every step is a fetch of all upstreams at once, and one 512 deep costs about 1.5x one 32 deep.
DRIFT_DEPTHS = (64, 512)
_REGULAR = frozenset({"100644", "100755"})
_MODES = {"120000": "a symbolic link", "160000": "a submodule", "040000": "a directory"}


# ------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class Cell:
    """One pin in one environment."""

    value: str | None  # "" for YAML null; None when it cannot be read (`problem` says why)
    file: str
    problem: str | None = None
    pending: bool = False  # the upstream holds another value: a promotion would carry it
    drift: bool = False  # ... and the upstream never held this one

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "file": self.file,
            "pending": self.pending,
            "drift": self.drift,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class PinRow:
    app: str
    pin: str  # "web/web", "web/chart"
    field: str  # tag | digest | repository | ref | version
    key: str  # the key path, canonical text
    cells: Mapping[str, Cell]  # environment → cell, for the environments shown

    @property
    def label(self) -> str:
        return f"{self.pin} {self.field}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "pin": self.pin,
            "field": self.field,
            "key": self.key,
            "values": {env: cell.as_dict() for env, cell in self.cells.items()},
        }


@dataclass(frozen=True)
class Gate:
    """An environment's gate on its head: the verdict, or why it could not be read."""

    required: tuple[str, ...]
    result: GateResult | None = None
    error: str | None = None

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "error"
        if not self.required:
            return "none"  # nothing required: promotions from here are not held back
        return self.result.verdict.value if self.result else "error"

    def reason(self) -> str:
        """Why it is not a pass, in one line ("" when it passes or requires nothing)."""
        if self.error is not None:
            return self.error
        latest = self.result.latest if self.result else None
        if latest is None or self.verdict in ("pass", "none"):
            return ""
        return "; ".join(c.reason for c in latest.contexts if c.verdict.value != "pass")

    def as_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {"required": list(self.required), "verdict": self.verdict}
        if self.result is not None and self.required:
            base |= {k: v for k, v in self.result.as_dict().items() if k != "verdict"}
        return base | {"error": self.error}


@dataclass(frozen=True)
class EnvStatus:
    name: str
    branch: str
    source: str | None  # `from:`
    delivery: str
    head: str
    committed: datetime
    age: timedelta
    gate: Gate | None  # None: no forge (or --forge none)
    pending: int = 0
    drift: int = 0
    upstream_searched: int = 0  # upstream commits searched for drift (0: nothing differed)
    upstream_complete: bool = False  # ... and that was the upstream's whole history
    window: WindowState | None = None  # deploy windows and freezes now (None: none set)

    def as_dict(self) -> dict[str, Any]:
        searched = None
        if self.source is not None:
            searched = {"commits": self.upstream_searched, "complete": self.upstream_complete}
        return {
            "name": self.name,
            "branch": self.branch,
            "from": self.source,
            "delivery": self.delivery,
            "head": {
                "sha": self.head,
                "committed_at": self.committed.isoformat(),
                "age_seconds": int(self.age.total_seconds()),
            },
            "gate": self.gate.as_dict() if self.gate is not None else None,
            "promotion_pending": self.pending,
            "drift": self.drift,
            "upstream_history": searched,
            "window": self.window.as_dict() if self.window else _ALWAYS_OPEN,
        }


_ALWAYS_OPEN = {"open": True, "next_opening": None, "next_closing": None, "freeze": None,
                "reason": None}  # fmt: skip


@dataclass(frozen=True)
class StatusResult:
    environments: tuple[EnvStatus, ...]
    pins: tuple[PinRow, ...]
    forge: str | None  # the forge the gates were read from; None: no gate column
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {
            "environments": [env.as_dict() for env in self.environments],
            "pins": [pin.as_dict() for pin in self.pins],
            "forge": self.forge,
            "promotion_pending": sum(env.pending for env in self.environments),
            "drift": sum(env.drift for env in self.environments),
        }


# ------------------------------------------------------------------------------ reading


def _utcnow() -> datetime:
    return datetime.now(UTC)


def status(
    options: Options,
    envs: Sequence[str] = (),
    forge: Forge | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> StatusResult:
    """Read every environment shown (`envs`, default all, in promoter.yaml's order) and its
    upstream, and decide the marks. An unknown environment is a ConfigError (exit 2)."""
    with scratch_repo(options) as repo:
        if not options.config:
            repo.start_fetch_default()
        config = read_config(options, repo)
        for name in envs:
            config.environment(name)
        shown = [env for env in config.environments.values() if not envs or env.name in envs]
        needed = {env.name: env for env in shown}
        for env in shown:
            if env.source is not None:
                needed.setdefault(env.source, config.environments[env.source])
        keys = pin_keys(config, list(config.apps))
        tips = repo.fetch_tips(env.branch for env in needed.values())
        reader = _Reader(repo, keys)
        cells = reader.read({name: (env, tips[env.branch]) for name, env in needed.items()})
        drift = _Drift(repo, reader, config)
        marked, searched = drift.mark(shown, cells)
        gates, forge_kind = _gates(options, repo, shown, tips, forge, now())
        moment = now()
        environments = []
        for env in shown:
            head = tips[env.branch]
            committed = datetime.fromtimestamp(repo.read_commit(head).committed, UTC)
            mine = [marked[env.name][k] for k in keys]
            depth, complete = searched.get(env.source or "", (0, False))
            environments.append(
                EnvStatus(
                    name=env.name,
                    branch=env.branch,
                    source=env.source,
                    delivery=env.delivery,
                    head=head,
                    committed=committed,
                    age=max(timedelta(0), moment - committed),
                    gate=gates.get(env.name),
                    pending=sum(c.pending for c in mine),
                    drift=sum(c.drift for c in mine),
                    upstream_searched=depth,
                    upstream_complete=complete,
                    window=None
                    if env.gate.schedule.always_open
                    else env.gate.schedule.state(moment),
                )
            )
    pins = tuple(
        PinRow(k.app, k.pin, k.field, k.where, {env.name: marked[env.name][k] for env in shown})
        for k in keys
    )
    return StatusResult(tuple(environments), pins, forge_kind, moment)


class _Reader:
    """Pin values from blobs, each distinct (blob, key) parsed once."""

    def __init__(self, repo: GitRepo, keys: Sequence[PinKey]) -> None:
        self.repo = repo
        self.keys = keys
        self.texts: dict[str, str | None] = {}  # blob id → text (None: not UTF-8)
        self.values: dict[tuple[str, PinKey], tuple[str | None, str | None]] = {}

    def read(self, envs: Mapping[str, tuple[Environment, str]]) -> dict[str, dict[PinKey, Cell]]:
        """Every key's cell in every environment: one ls-tree per branch, one blob fetch."""
        listed: dict[str, dict[str, tuple[str, str]]] = {}
        by_commit: dict[str, set[str]] = {}
        for env, tip in envs.values():
            by_commit.setdefault(tip, set()).update(k.path(env.name) for k in self.keys)
        for tip, paths in by_commit.items():
            listed[tip] = self.repo.list_files(tip, paths)
        self.load(oid for entries in listed.values() for mode, oid in entries.values()
                  if mode in _REGULAR)  # fmt: skip
        cells: dict[str, dict[PinKey, Cell]] = {}
        for name, (env, tip) in envs.items():
            row: dict[PinKey, Cell] = {}
            for key in self.keys:
                path = key.path(name)
                entry = listed[tip].get(path)
                if entry is None:
                    row[key] = Cell(None, path, f"{path} does not exist on {env.branch}")
                elif entry[0] not in _REGULAR:
                    what = _MODES.get(entry[0], f"an entry of mode {entry[0]}")
                    row[key] = Cell(None, path, f"{path} is {what}, not a file")
                else:
                    value, problem = self.value(entry[1], key)
                    row[key] = Cell(value, path, problem)
            cells[name] = row
        return cells

    def load(self, oids: Any) -> None:
        """Fetch (one batch) and decode the blobs not read yet."""
        wanted = {oid for oid in oids if oid not in self.texts}
        for oid, data in self.repo.read_blobs(wanted).items():
            try:
                self.texts[oid] = data.decode("utf-8")
            except UnicodeDecodeError:
                self.texts[oid] = None

    def value(self, oid: str, key: PinKey) -> tuple[str | None, str | None]:
        """(value, None), or (None, why it cannot be read)."""
        found = self.values.get((oid, key))
        if found is None:
            found = self.values[(oid, key)] = self._parse(oid, key)
        return found

    def _parse(self, oid: str, key: PinKey) -> tuple[str | None, str | None]:
        from promoter.yamledit import locate
        from promoter.yamlread import UNUSUAL, read_scalar

        text = self.texts.get(oid)
        if text is None:
            return None, "not UTF-8 text"
        # One pass over libyaml's events for the plain files values.yaml almost always is;
        # locate (the composer) reads any other file and says what is wrong with it.
        value = read_scalar(text, key.key, key.doc)
        if value is not UNUSUAL:
            return value, None
        try:
            return locate(text, key.key, key.doc).value or "", None
        except EditError as err:
            return None, str(err)


class _Drift:
    """Promotion-pending and drift marks, searching upstream history only where needed."""

    def __init__(self, repo: GitRepo, reader: _Reader, config: Config) -> None:
        self.repo = repo
        self.reader = reader
        self.config = config

    def mark(
        self, shown: Sequence[Environment], cells: dict[str, dict[PinKey, Cell]]
    ) -> tuple[dict[str, dict[PinKey, Cell]], dict[str, tuple[int, bool]]]:
        """Cells with their marks; and per upstream searched, (commits searched, complete)."""
        differing: dict[str, list[tuple[str, PinKey]]] = {}  # upstream → (env, key)
        marked = {name: dict(row) for name, row in cells.items()}
        for env in shown:
            if env.source is None:
                continue
            for key, cell in cells[env.name].items():
                upstream = cells[env.source][key]
                if cell.value is None or upstream.value is None or cell.value == upstream.value:
                    continue
                marked[env.name][key] = Cell(cell.value, cell.file, None, pending=True)
                differing.setdefault(env.source, []).append((env.name, key))
        searched: dict[str, tuple[int, bool]] = {}
        for name, key in self._search(differing, cells, searched):
            cell = marked[name][key]
            marked[name][key] = Cell(cell.value, cell.file, None, pending=True, drift=True)
        return marked, searched

    def _search(
        self,
        differing: dict[str, list[tuple[str, PinKey]]],
        cells: dict[str, dict[PinKey, Cell]],
        searched: dict[str, tuple[int, bool]],
    ) -> list[tuple[str, PinKey]]:
        """The (env, key) pairs whose value their upstream never held. Every upstream's history
        is read in one fetch per depth, deepening only while some value is unexplained; what
        was searched goes into `searched` (upstream → commits, whole history)."""
        left = dict(differing)
        never: list[tuple[str, PinKey]] = []
        for depth in DRIFT_DEPTHS:
            if not left:
                break
            paths: dict[str, set[str]] = {}
            for source, pairs in left.items():
                branch = self.config.environments[source].branch
                paths.setdefault(branch, set()).update(key.path(source) for _, key in pairs)
            histories = self.repo.histories(paths, depth)
            # Every version of the differing files in the window, in one batch.
            self.reader.load(
                {oid for rows, _ in histories.values() for _, row in rows
                 for oid in row.values() if oid}
            )  # fmt: skip
            for source, pairs in list(left.items()):
                rows, complete = histories[self.config.environments[source].branch]
                held: dict[PinKey, set[str]] = {}
                for _, key in pairs:
                    if key not in held:
                        oids = {row.get(key.path(source)) for _, row in rows}
                        values = (self.reader.value(oid, key)[0] for oid in oids if oid)
                        held[key] = {value for value in values if value is not None}
                pairs = [(n, k) for n, k in pairs if cells[n][k].value not in held[k]]
                searched[source] = (len(rows), complete)
                if pairs and not complete and depth != DRIFT_DEPTHS[-1]:
                    left[source] = pairs
                else:
                    never += pairs
                    del left[source]
        return never


def _gates(
    options: Options,
    repo: GitRepo,
    shown: Sequence[Environment],
    tips: Mapping[str, str],
    forge: Forge | None,
    now: datetime,
) -> tuple[dict[str, Gate], str | None]:
    """Each environment's gate on its head, as `wait` judges it; ({}, None) without a forge.
    A forge that fails is reported in the gate (`error`), not raised: the rest still shows."""
    from promoter.gates import evaluate, expand

    if forge is None:
        from promoter.forge import detect, open_forge

        info = detect(options.forge, options.api_url, repo.remote.url)
        if info.kind == "none":
            return {}, None
        forge = open_forge(info, resolve_token(options, repo.remote.url))
    read: dict[str, list[CommitStatus] | str] = {}  # head → statuses, or the error
    gates: dict[str, Gate] = {}
    for env in shown:
        head = tips[env.branch]
        required = expand(env.gate.require, (), env.name, env.branch)
        if not required:
            gates[env.name] = Gate(required)
            continue
        if head not in read:
            try:
                read[head] = forge.statuses(head)
            except PromoterError as err:
                read[head] = _one_line(str(err))
        found = read[head]
        if isinstance(found, str):
            gates[env.name] = Gate(required, error=found)
            continue
        result = evaluate(required, [head], {head: found}, now, env.gate.soak)
        gates[env.name] = Gate(required, result)
    return gates, forge.info.kind


# ------------------------------------------------------------------------------ rendering


def render(result: StatusResult, fmt: str) -> str:
    """`table` (plain text for terminals and logs) or `markdown` (job summaries)."""
    if fmt == "markdown":
        return _markdown(result)
    return _table(result)


_DIGEST = re.compile(r"^(sha256|sha512):([0-9a-f]{12})[0-9a-f]+$")
_WIDE = 64


def _short(value: str) -> str:
    """A value cut for a table cell: a digest as `sha256:<12 hex>...` (as short SHAs are),
    anything over 64 characters cut there. JSON always carries the whole value."""
    match = _DIGEST.match(value)
    if match:
        return f"{match[1]}:{match[2]}..."
    return value if len(value) <= _WIDE else value[: _WIDE - 3] + "..."


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _cell_text(cell: Cell) -> str:
    if cell.value is None:
        return "(missing)"
    mark = " !" if cell.drift else " *" if cell.pending else ""
    return show_value(_short(cell.value)) + mark


def _gate_text(env: EnvStatus) -> str:
    if env.gate is None:
        return ""
    return {"none": "no gate"}.get(env.gate.verdict, env.gate.verdict)


def window_text(env: EnvStatus, now: datetime) -> str:
    """`open until Thu 16:00 CET`, `closed, opens Mon 09:00 CET`, `frozen (year-end) through
    2027-01-04, opens ...`; `open` where no window or freeze is set."""
    from promoter.windows import when_text

    state = env.window
    if state is None:
        return "open"
    opening = f"opens {when_text(state.next_opening, now)}" if state.next_opening else "no opening"
    if state.open:
        closing = state.next_closing
        return f"open until {when_text(closing, now)}" if closing else "open"
    if state.freeze is not None:
        why = f" ({_one_line(state.freeze.reason)})" if state.freeze.reason else ""
        return f"frozen{why} through {state.freeze.last.isoformat()}, {opening}"
    return f"closed, {opening}"


def _table(result: StatusResult) -> str:
    envs = result.environments
    if not envs:
        return "no environments"
    rows: list[list[str]] = [
        ["", *(env.name for env in envs)],
        ["branch", *(show_value(env.branch) for env in envs)],
        ["head", *(f"{env.head[:12]} ({_age(env.age)} ago)" for env in envs)],
    ]
    if result.forge is not None:
        rows.append(["gate", *(_gate_text(env) for env in envs)])
    if any(env.window for env in envs):
        rows.append(["window", *(window_text(env, result.generated_at) for env in envs)])
    rows += [[pin.label, *(_cell_text(pin.cells[env.name]) for env in envs)] for pin in result.pins]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    lines.insert(len(rows) - len(result.pins), "")
    return "\n".join([*lines, *_notes(result, markdown=False)])


def _notes(result: StatusResult, markdown: bool) -> list[str]:
    """What the marks mean, with counts; gates that do not pass, and why; unreadable pins."""
    envs = result.environments
    text = md_text if markdown else _one_line
    code = md_code if markdown else (lambda s: s or "")
    out: list[str] = []
    pending = [
        f"{text(env.name)} {env.pending} from {text(env.source)}" for env in envs if env.pending
    ]
    drifting = [env for env in envs if env.drift]
    if pending or drifting:
        out.append("")
    star, bang = ("**pending**", "**drift**") if markdown else ("*", "!")
    if pending:
        out.append(
            f"{star} promotion pending (the upstream holds another value; `promote --to ENV` "
            f"would carry it): {', '.join(pending)}"
        )
    for env in drifting:
        window = "" if env.upstream_complete else f" in its last {env.upstream_searched} commits"
        out.append(
            f"{bang} drift in {text(env.name)}: {env.drift} value{'s' if env.drift != 1 else ''} "
            f"{text(env.source)} never held{window} (not brought by a promotion)"
        )
    gates = [env for env in envs if env.gate is not None and env.gate.reason()]
    problems = [
        (env.name, pin.label, cell)
        for pin in result.pins
        for env in envs
        if (cell := pin.cells[env.name]).problem
    ]
    if gates or problems:
        out.append("")
    for env in gates:
        assert env.gate is not None
        where = f" on {code(env.head[:12])}" if env.gate.verdict != "error" else ""
        reason = text(env.gate.reason())
        out.append(f"gate {env.gate.verdict} in {text(env.name)}{where}: {reason}")
    for name, label, cell in problems[:20]:
        out.append(f"{text(name)}: {text(label)}: {text(cell.problem)}")
    if len(problems) > 20:
        out.append(f"... and {len(problems) - 20} more pins that cannot be read")
    return out


def _markdown(result: StatusResult) -> str:
    envs = result.environments
    if not envs:
        return "No environments."
    head = "| | " + " | ".join(f"**{md_text(env.name)}**" for env in envs) + " |"
    lines = [head, "|---|" + "---|" * len(envs)]
    lines.append("| branch | " + " | ".join(md_code(env.branch) for env in envs) + " |")
    lines.append("| head | " + " | ".join(
        f"{md_code(env.head[:12])} {_age(env.age)} ago" for env in envs) + " |")  # fmt: skip
    if result.forge is not None:
        lines.append("| gate | " + " | ".join(_gate_text(env) for env in envs) + " |")
    if any(env.window for env in envs):
        texts = (md_text(window_text(env, result.generated_at)) for env in envs)
        lines.append("| window | " + " | ".join(texts) + " |")
    for pin in result.pins:
        cells = []
        for env in envs:
            cell = pin.cells[env.name]
            if cell.value is None:
                cells.append("*missing*")
                continue
            mark = " **drift**" if cell.drift else " **pending**" if cell.pending else ""
            cells.append(md_code(_short(cell.value)) + mark)
        lines.append(f"| {md_text(pin.pin)} {md_text(pin.field)} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, *_notes(result, markdown=True)])
