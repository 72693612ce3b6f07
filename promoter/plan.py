"""What to change where: (config, requested versions, file contents) → Plan. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from posixpath import dirname, join

from promoter.config import ChartPin, Config, ImagePin, file_for
from promoter.errors import EditError, UsageError
from promoter.model import Change, ImageRef, PinRequest
from promoter.yamledit import (
    DocSelector,
    KeyPath,
    Location,
    format_key_path,
    locate,
    set_at,
    set_scalar,
)


@dataclass(frozen=True)
class Edit:
    """Set one scalar: the unit a Plan is made of."""

    app: str
    pin: str
    file: str
    doc: DocSelector | None
    key: KeyPath
    value: str
    whole_ref: ImageRef | None = None  # the field holds repo:tag@digest; merge into it


def resolve(config: Config, env: str, requests: Sequence[PinRequest]) -> list[Edit]:
    """Turn requests into edits, checking apps, pins and keys before any I/O."""
    config.environment(env)
    edits: list[Edit] = []
    seen: dict[str, PinRequest] = {}
    for request in requests:
        app = config.app(request.app)
        pin: ImagePin | ChartPin
        if request.version is not None:
            if app.chart is None:
                raise UsageError(f"{request.flag}: app {app.name!r} has no `chart:` pin")
            pin = app.chart
        else:
            pin = _image_pin(request, app.images)
        earlier = seen.setdefault(pin.label, request)
        if earlier is not request:
            raise UsageError(f"{request.flag}: {pin.label} is already set by {earlier.flag}")
        file = file_for(pin.file, env)
        if isinstance(pin, ChartPin):
            assert request.version is not None
            edits.append(Edit(app.name, pin.label, file, pin.doc, pin.version, request.version))
        else:
            assert request.ref is not None
            edits.extend(_image_edits(request, pin, file))
    return edits


def _image_pin(request: PinRequest, images: Mapping[str, ImagePin]) -> ImagePin:
    names = ", ".join(images) or "none"
    if request.image is not None:
        if request.image not in images:
            raise UsageError(f"{request.flag}: app {request.app!r} has no image {request.image!r}"
                             f" (its images: {names})")  # fmt: skip
        return images[request.image]
    if len(images) == 1:
        return next(iter(images.values()))
    if request.app in images:
        return images[request.app]
    raise UsageError(
        f"{request.flag}: app {request.app!r} has several images ({names}); "
        f"name one: --image {request.app}/IMAGE=..."
    )


def _image_edits(request: PinRequest, pin: ImagePin, file: str) -> list[Edit]:
    ref = request.ref
    assert ref is not None

    def edit(key: KeyPath, value: str, whole: ImageRef | None = None) -> Edit:
        return Edit(pin.app, pin.label, file, pin.doc, key, value, whole)

    if pin.ref is not None:
        return [edit(pin.ref, str(ref), ref)]
    if ref.digest and pin.digest is None:
        raise UsageError(
            f"{request.flag}: pin {pin.label} has no `digest:` key in promoter.yaml; "
            "add one, or pass a tag without @sha256:..."
        )
    edits = []
    if ref.tag is not None and pin.tag is not None:
        edits.append(edit(pin.tag, ref.tag))
    if pin.digest is not None:
        # A new tag with a stale digest would still deploy the old image: clear it.
        edits.append(edit(pin.digest, ref.digest or ""))
    if ref.repository and pin.repository is not None:
        edits.append(edit(pin.repository, ref.repository))
    return edits


def files_needed(edits: Sequence[Edit]) -> set[str]:
    files = {edit.file for edit in edits}
    return files | {lock for edit in edits if (lock := chart_lock_for(edit))}


def chart_lock_for(edit: Edit) -> str | None:
    """A Chart.yaml dependency edit must keep the Chart.lock beside it in sync."""
    if edit.file.rsplit("/", 1)[-1] == "Chart.yaml" and edit.key[:1] == ("dependencies",):
        return join(dirname(edit.file), "Chart.lock")
    return None


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    files: Mapping[str, bytes]  # path → new content, only files that changed

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def apply(
    edits: Sequence[Edit],
    contents: Mapping[str, bytes | None],
    now: Callable[[], datetime],
) -> Plan:
    """Apply edits to the current file contents; files and changes that actually moved."""
    by_file: dict[str, list[Edit]] = {}
    for edit in edits:
        by_file.setdefault(edit.file, []).append(edit)
    texts: dict[str, str] = {}
    changes: list[Change] = []
    for path, file_edits in by_file.items():
        text = _decode(file_edits[0], contents.get(path))
        # Locate every pin in the same text (one parse), then splice from the end backwards
        # so that each span found stays valid.
        moves: list[tuple[Location, str, Edit]] = []
        for edit in file_edits:
            loc = _locate(edit, text)
            new = _merge_ref(loc.value, edit.whole_ref) if edit.whole_ref else edit.value
            if loc.value == new or (loc.value is None and new == ""):
                continue
            moves.append((loc, new, edit))
            changes.append(Change(edit.app, edit.pin, path, format_key_path(edit.key),
                                  loc.value, new))  # fmt: skip
        moves.sort(key=lambda move: move[0].start, reverse=True)
        for (loc, new, edit), later in zip(moves, [None, *moves], strict=False):
            if later is not None and loc.end > later[0].start:
                raise EditError(f"{path}: pins {edit.pin} and {later[2].pin} edit the same value")
            text = _set(edit, text, loc, new)
        texts[path] = text
    _sync_chart_locks(edits, contents, texts, now)
    originals = {path: contents[path] for path in texts}
    files = {
        path: text.encode() for path, text in texts.items() if text.encode() != originals[path]
    }
    return Plan(changes=tuple(changes), files=files)


def _sync_chart_locks(
    edits: Sequence[Edit],
    contents: Mapping[str, bytes | None],
    texts: dict[str, str],
    now: Callable[[], datetime],
) -> None:
    for edit in edits:
        lock = chart_lock_for(edit)
        if lock is None or contents.get(lock) is None:
            continue
        if texts[edit.file].encode() == contents[edit.file]:
            continue
        from promoter.helmlock import lock_updates

        lock_text = texts.get(lock) or _decode(edit, contents[lock], lock)
        try:
            before = _decode(edit, contents[edit.file])
            updates = lock_updates(
                texts[edit.file], lock_text, now(), chart_yaml_text_before=before
            )
        except EditError as err:
            raise EditError(f"{lock}: {err} (pin {edit.pin})") from None
        for key, value in updates:
            lock_text = set_scalar(lock_text, _parse(key), value)
        texts[lock] = lock_text


def _parse(key: str) -> KeyPath:
    from promoter.yamledit import parse_key_path

    return parse_key_path(key)


def _merge_ref(old: str | None, ref: ImageRef) -> str:
    """Put a new tag/digest into a `repo:tag@digest` field, keeping its repository if not given."""
    repository = ref.repository
    if repository is None and old:
        try:
            repository = ImageRef.parse(old).repository
        except ValueError:
            repository = None
    return str(ImageRef(tag=ref.tag, repository=repository, digest=ref.digest))


def _decode(edit: Edit, data: bytes | None, path: str | None = None) -> str:
    path = path or edit.file
    if data is None:
        raise EditError(f"{path} does not exist on the environment branch (pin {edit.pin})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EditError(f"{path} is not UTF-8 text (pin {edit.pin})") from None


def _locate(edit: Edit, text: str) -> Location:
    try:
        return locate(text, edit.key, edit.doc)
    except EditError as err:
        raise EditError(f"{edit.file}: {err} (pin {edit.pin})") from None


def _set(edit: Edit, text: str, loc: Location, value: str) -> str:
    try:
        return set_at(text, loc, value)
    except EditError as err:
        raise EditError(f"{edit.file}: {err} (pin {edit.pin})") from None
