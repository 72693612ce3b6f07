"""Deploy windows and freezes (issue 16, point 1): the pure evaluation at its edges, the
configuration's checks, and the hold on update, promote and rollback over real git."""

from __future__ import annotations

import json
import time as wallclock
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from promoter.commands.promote import promote
from promoter.commands.rollback import rollback
from promoter.commands.status import render
from promoter.commands.status import status as read_status
from promoter.commands.update import update
from promoter.config import load_config
from promoter.delivery import Clock
from promoter.errors import ConfigError, Held, UsageError
from promoter.options import Options
from promoter.report import ci_summary, result_kind
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import commit_message
from promoter.sinks import md_text
from promoter.windows import Freeze, Schedule, parse_window, when_text
from tests.helpers import run_cli

pytest_plugins = ["tests.forge_fixtures"]

BERLIN = ZoneInfo("Europe/Berlin")
WORKDAYS = "Mon-Thu 09:00-16:00 Europe/Berlin"


def at(*args: int, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def schedule(*windows: str, freezes: tuple[tuple[str, str, str | None], ...] = (),
             zone: ZoneInfo = BERLIN) -> Schedule:  # fmt: skip
    return Schedule(
        tuple(parse_window(w) for w in windows),
        tuple(Freeze(date.fromisoformat(a), date.fromisoformat(b), r, zone) for a, b, r in freezes),
    )


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "days"),
    [
        ("Mon-Thu 09:00-16:00 Europe/Berlin", {0, 1, 2, 3}),
        ("Sat 10:00-12:00 UTC", {5}),
        ("Fri-Mon 08:00-20:00 UTC", {4, 5, 6, 0}),
        ("Mon,Wed,Fri-Sat 08:00-20:00 UTC", {0, 2, 4, 5}),
        ("daily 00:00-24:00 UTC", set(range(7))),
        ("monday-Tuesday   7:30 - 8:00   America/New_York", {0, 1}),
    ],
)
def test_window_forms(spec, days):
    assert parse_window(spec).days == days


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("Mon-Thu 9-16 Europe/Berlin", "write DAYS HH:MM-HH:MM ZONE"),
        ("Mon-Thu 09:00-16:00", "write DAYS HH:MM-HH:MM ZONE"),
        ("Mon-Thx 09:00-16:00 UTC", "'Thx' is not a day"),
        ("Mon 09:00-24:30 UTC", "24:30 is not a time of day"),
        ("Mon 24:00-02:00 UTC", "24:00 is not a time of day"),
        ("Mon 09:60-10:00 UTC", "09:60 is not a time of day"),
        ("Mon 09:00-09:00 UTC", "starts and ends at the same time"),
        ("Mon 09:00-10:00 Europe/Berln", "unknown time zone 'Europe/Berln'"),
        ("Mon 09:00-10:00 ../../etc/passwd", "unknown time zone"),
    ],
)
def test_bad_window_says_what_and_the_expected_form(spec, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        parse_window(spec)


CONFIG_GATE = """\
environments:
  dev: {{}}
  prod:
    from: dev
    gate:
{gate}
apps:
  web: {{images: {{web: {{file: apps/web/values.yaml, tag: image.tag}}}}}}
"""


def config_with(gate: str):
    return load_config(CONFIG_GATE.format(gate=gate), source="promoter.yaml")


def test_config_reads_windows_and_freezes_with_the_first_windows_zone():
    config = config_with(
        '      windows: ["Mon-Thu 09:00-16:00 Europe/Berlin", "Sat 10:00-12:00 UTC"]\n'
        "      freeze: [{from: 2026-12-20, to: 2027-01-04, reason: year-end},\n"
        "               {from: 2027-04-01, to: 2027-04-01, zone: America/New_York}]"
    )
    sched = config.environments["prod"].gate.schedule
    assert [w.text for w in sched.windows] == [WORKDAYS, "Sat 10:00-12:00 UTC"]
    year_end, april = sched.freezes
    assert (year_end.first, year_end.last, year_end.reason, year_end.zone.key) == (
        date(2026, 12, 20), date(2027, 1, 4), "year-end", "Europe/Berlin")  # fmt: skip
    assert (april.reason, april.zone.key) == (None, "America/New_York")
    assert config.environments["dev"].gate.schedule.always_open


@pytest.mark.parametrize(
    ("gate", "says"),
    [
        ('      windows: ["Mon-Thu 9-16 Europe/Berlin"]',
         "promoter.yaml line 6: environments.prod.gate.windows[0]: 'Mon-Thu 9-16 Europe/Berlin' "
         'is not a window: write DAYS HH:MM-HH:MM ZONE, e.g. "Mon-Thu 09:00-16:00 Europe/Berlin"'),
        ('      windows: ["Mon 09:00-16:00 Mars/Olympus"]',
         "environments.prod.gate.windows[0]: unknown time zone 'Mars/Olympus'"),
        ("      freeze: [{from: 2027-01-04, to: 2026-12-20}]",
         "promoter.yaml line 6: environments.prod.gate.freeze[0]: from 2027-01-04 is after to "
         "2026-12-20"),
        ("      freeze: [{from: 2026-12-20}]",
         "environments.prod.gate.freeze[0]: `to:` is missing (a freeze is {from: 2026-12-20, "
         "to: 2027-01-04, reason: year-end})"),
        ("      freeze: [{from: 2026-12-20, to: 2027-1-4}]",
         "environments.prod.gate.freeze[0].to: '2027-1-4' is not a date: write YYYY-MM-DD"),
        ("      freeze: [{from: 2026-12-20, to: 2027-01-04, until: x}]",
         "environments.prod.gate.freeze[0].until: unknown key"),
        ('      freeze: [{from: 2026-12-20, to: 2027-01-04, reason: "a\\nb"}]',
         "environments.prod.gate.freeze[0].reason: one printable line"),
        ("      freeze: [{from: 2026-12-20, to: 2027-01-04, zone: Nowhere/At_All}]",
         "environments.prod.gate.freeze[0].zone: unknown time zone 'Nowhere/At_All'"),
        ("      windows: 3", "environments.prod.gate.windows: expected a list of strings"),
    ],
)  # fmt: skip
def test_bad_gate_schedule_is_one_line_naming_the_entry(gate, says):
    with pytest.raises(ConfigError) as caught:
        config_with(gate)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


# --- evaluation: edges ---------------------------------------------------------------------


def test_start_is_inclusive_end_is_exclusive():
    sched = schedule(WORKDAYS)
    monday = at(2026, 11, 30, 9, 0)
    assert sched.is_open(monday)
    assert not sched.is_open(monday - timedelta(microseconds=1))
    assert sched.is_open(at(2026, 11, 30, 15, 59, 59))
    assert not sched.is_open(at(2026, 11, 30, 16, 0))
    assert sched.next_closing(monday) == at(2026, 11, 30, 16, 0)
    assert sched.next_opening(at(2026, 11, 30, 16, 0)) == at(2026, 12, 1, 9, 0)


def test_friday_evening_opens_monday_morning_across_the_weekend():
    sched = schedule(WORKDAYS)
    friday = at(2026, 11, 27, 17, 30)
    state = sched.state(friday)
    assert not state.open
    assert state.reason == 'outside "Mon-Thu 09:00-16:00 Europe/Berlin"'
    assert state.next_opening is not None
    assert state.next_opening.isoformat() == "2026-11-30T09:00:00+01:00"
    assert state.next_opening.tzinfo == BERLIN  # in the window's zone
    assert when_text(state.next_opening, friday) == "Mon 09:00 CET"
    assert state.next_closing == at(2026, 11, 30, 16, 0)


def test_next_opening_across_a_whole_week():
    sched = schedule("Wed 10:00-11:00 UTC")
    assert sched.next_opening(utc(2026, 12, 2, 10, 30)) == utc(2026, 12, 9, 10, 0)  # open now
    assert sched.next_opening(utc(2026, 12, 2, 11, 0)) == utc(2026, 12, 9, 10, 0)
    assert when_text(utc(2026, 12, 9, 10, 0), utc(2026, 12, 2, 11, 0)) == "Wed 2026-12-09 10:00 UTC"


def test_weekly_window_keeps_its_wall_time_over_the_spring_change():
    sched = schedule(WORKDAYS)
    opening = sched.next_opening(at(2026, 3, 27, 17, 0))  # Friday, CET
    assert opening is not None and opening.isoformat() == "2026-03-30T09:00:00+02:00"  # CEST


def test_window_over_the_skipped_hour_is_two_real_hours_long():
    # 2026-03-29, Europe/Berlin: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    sched = schedule("Sun 01:00-04:00 Europe/Berlin")
    assert sched.is_open(utc(2026, 3, 29, 0, 0))  # 01:00 CET
    assert sched.is_open(utc(2026, 3, 29, 1, 30))  # 03:30 CEST
    assert not sched.is_open(utc(2026, 3, 29, 2, 0))  # 04:00 CEST
    assert sched.next_closing(utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 2, 0)


def test_a_start_inside_the_skipped_hour_moves_forward_by_the_gap():
    sched = schedule("Sun 02:30-05:00 Europe/Berlin")
    opening = sched.next_opening(utc(2026, 3, 28, 12, 0))
    assert opening is not None and opening.isoformat() == "2026-03-29T03:30:00+02:00"


def test_a_window_wholly_inside_the_skipped_hour_does_not_happen_that_day():
    sched = schedule("Sun 02:00-03:00 Europe/Berlin")
    opening = sched.next_opening(utc(2026, 3, 28, 12, 0))
    assert opening is not None and opening.isoformat() == "2026-04-05T02:00:00+02:00"
    assert not any(sched.is_open(utc(2026, 3, 29, 0, 0) + timedelta(minutes=m))
                   for m in range(0, 180, 5))  # fmt: skip


def test_window_over_the_repeated_hour_is_four_real_hours_long():
    # 2026-10-25, Europe/Berlin: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:xx happens twice.
    sched = schedule("Sun 01:00-04:00 Europe/Berlin")
    assert sched.is_open(utc(2026, 10, 24, 23, 0))  # 01:00 CEST
    assert sched.is_open(utc(2026, 10, 25, 0, 30))  # 02:30 CEST, the first time
    assert sched.is_open(utc(2026, 10, 25, 1, 30))  # 02:30 CET, the second time
    closing = sched.next_closing(utc(2026, 10, 25, 0, 0))
    assert closing is not None and closing.isoformat() == "2026-10-25T04:00:00+01:00"
    assert closing - utc(2026, 10, 24, 23, 0) == timedelta(hours=4)


def test_a_start_inside_the_repeated_hour_is_its_first_occurrence():
    sched = schedule("Sun 02:30-06:00 Europe/Berlin")
    opening = sched.next_opening(utc(2026, 10, 24, 12, 0))
    assert opening is not None and opening.isoformat() == "2026-10-25T02:30:00+02:00"


def test_window_across_midnight():
    sched = schedule("Fri 22:00-02:00 UTC")
    assert not sched.is_open(utc(2026, 11, 27, 21, 59))
    assert sched.is_open(utc(2026, 11, 27, 22, 0))
    assert sched.is_open(utc(2026, 11, 28, 1, 59))  # Saturday, still Friday's window
    assert not sched.is_open(utc(2026, 11, 28, 2, 0))
    assert sched.next_closing(utc(2026, 11, 27, 23, 0)) == utc(2026, 11, 28, 2, 0)


def test_multiple_windows_gaps_and_adjacent_ones():
    sched = schedule("Mon-Thu 09:00-12:00 UTC", "Mon-Thu 13:00-16:00 UTC")
    assert not sched.is_open(utc(2026, 11, 30, 12, 30))
    assert sched.next_opening(utc(2026, 11, 30, 12, 30)) == utc(2026, 11, 30, 13, 0)
    assert sched.next_closing(utc(2026, 11, 30, 10, 0)) == utc(2026, 11, 30, 12, 0)
    joined = schedule("Mon 09:00-12:00 UTC", "Mon 12:00-15:00 UTC")
    assert joined.next_closing(utc(2026, 11, 30, 10, 0)) == utc(2026, 11, 30, 15, 0)


def test_next_opening_is_given_in_the_zone_of_the_window_that_opens():
    sched = schedule(WORKDAYS, "Sun 09:00-10:00 America/New_York")
    opening = sched.next_opening(at(2026, 11, 27, 17, 30))
    assert opening is not None and opening.isoformat() == "2026-11-29T09:00:00-05:00"


def test_freeze_over_a_window_holds_whole_days_inclusive():
    sched = schedule(WORKDAYS, freezes=(("2026-12-20", "2027-01-04", "year-end"),))
    inside = at(2026, 12, 21, 10, 0)  # a Monday, in the window
    state = sched.state(inside)
    assert not state.open and state.freeze is not None
    assert state.reason == 'freeze "year-end" through 2027-01-04'
    assert state.next_opening is not None
    assert state.next_opening.isoformat() == "2027-01-05T09:00:00+01:00"  # Tue: 01-04 is frozen
    assert not sched.is_open(at(2027, 1, 4, 10, 0))  # Monday, the last day, still frozen
    assert sched.freeze_at(at(2027, 1, 4, 23, 59, 59)) is not None
    assert sched.freeze_at(at(2027, 1, 5, 0, 0)) is None
    assert sched.freeze_at(at(2026, 12, 19, 23, 59, 59)) is None
    # Open on the Thursday before: it closes when the window does, not at the freeze.
    assert sched.next_closing(at(2026, 12, 17, 10, 0)) == at(2026, 12, 17, 16, 0)


def test_a_freeze_starting_in_a_window_closes_it_at_midnight():
    sched = schedule("Fri 22:00-02:00 UTC", freezes=(("2026-11-28", "2026-11-28", None),),
                     zone=ZoneInfo("UTC"))  # fmt: skip
    assert sched.next_closing(utc(2026, 11, 27, 23, 0)) == utc(2026, 11, 28, 0, 0)
    assert sched.state(utc(2026, 11, 28, 1, 0)).reason == "a freeze through 2026-11-28"


def test_a_freeze_ending_in_the_middle_of_a_window_opens_it_at_midnight():
    sched = schedule("daily 22:00-02:00 UTC", freezes=(("2026-12-20", "2026-12-24", "x"),),
                     zone=ZoneInfo("UTC"))  # fmt: skip
    assert not sched.is_open(utc(2026, 12, 24, 23, 30))
    assert sched.next_opening(utc(2026, 12, 24, 23, 30)) == utc(2026, 12, 25, 0, 0)
    assert sched.next_closing(utc(2026, 12, 24, 23, 30)) == utc(2026, 12, 25, 2, 0)


def test_no_windows_is_always_open_except_in_a_freeze():
    assert Schedule().is_open(utc(2026, 11, 27, 17, 30))
    assert Schedule().next_opening(utc(2026, 11, 27)) is None
    sched = Schedule((), (Freeze(date(2026, 12, 24), date(2026, 12, 26), "x", ZoneInfo("UTC")),))
    assert sched.is_open(utc(2026, 12, 23, 23, 59))
    assert not sched.is_open(utc(2026, 12, 24, 0, 0))
    assert sched.next_opening(utc(2026, 12, 25)) == utc(2026, 12, 27)
    assert sched.next_closing(utc(2026, 12, 25)) is None  # after it, open for good


def test_a_decades_long_freeze_is_jumped_not_walked():
    sched = schedule(WORKDAYS, freezes=(("2026-01-01", "2099-12-31", None),))
    began = wallclock.perf_counter()
    opening = sched.next_opening(at(2026, 6, 1, 10, 0))
    assert opening is not None and opening.isoformat() == "2100-01-04T09:00:00+01:00"
    assert wallclock.perf_counter() - began < 0.5


# --- the hold on writes, over real git --------------------------------------------------------

CONFIG = """\
environments:
  dev: {branch: env/dev}
  staging: {branch: env/staging, from: dev}
  prod:
    branch: env/prod
    from: dev
    gate:
      windows: ["Mon-Thu 09:00-16:00 Europe/Berlin"]
      freeze: [{from: 2026-12-20, to: 2027-01-04, reason: year-end}]
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
"""

VALUES = "image:\n  tag: 1.0.0\n"
FRIDAY_EVENING = at(2026, 11, 27, 17, 30)
MONDAY_MORNING = at(2026, 11, 30, 10, 0)


def files(config: str = CONFIG, tag: str = "1.0.0") -> dict[str, str]:
    return {"promoter.yaml": config, "apps/web/values.yaml": VALUES.replace("1.0.0", tag)}


@pytest.fixture
def repo(env_repo):
    return env_repo({"main": files(), "env/dev": files(tag="1.1.0"), "env/staging": files(),
                     "env/prod": files()})  # fmt: skip


def clock(moment: datetime) -> Clock:
    return Clock(now=lambda: moment)


def options(repo, **extra) -> Options:
    return Options(repo=repo.url, token=TEST_TOKEN, **extra)


def test_update_to_prod_on_friday_evening_is_held_and_the_override_goes_through(repo):
    before = repo.sha("env/prod")
    with pytest.raises(Held) as caught:
        update(options(repo), "prod", images=["web=1.2.0"], clock=clock(FRIDAY_EVENING))
    held = caught.value
    assert held.exit_code == 4
    assert str(held) == (
        'prod: held: outside "Mon-Thu 09:00-16:00 Europe/Berlin"; next opening '
        "2026-11-30T09:00:00+01:00 (Mon 09:00 CET); nothing written (for an emergency: "
        '--override-window "<reason>")'
    )
    assert held.as_dict()["next_opening"] == "2026-11-30T09:00:00+01:00"
    assert repo.sha("env/prod") == before

    result = update(options(repo), "prod", images=["web=1.2.0"], clock=clock(FRIDAY_EVENING),
                    override_window="INC-4711: checkout is down")  # fmt: skip
    assert result.changed and repo.sha("env/prod") == result.commit
    message = commit_message(repo.path, "env/prod")
    assert "Promoter-Override-Window: INC-4711: checkout is down" in message.splitlines()
    assert result.as_dict()["override_window"] == "INC-4711: checkout is down"


def test_update_inside_the_window_writes_and_records_no_override(repo):
    result = update(options(repo), "prod", images=["web=1.2.0"], clock=clock(MONDAY_MORNING),
                    override_window="not needed")  # fmt: skip
    assert result.changed
    assert "Override-Window" not in commit_message(repo.path, "env/prod")
    assert result.as_dict()["override_window"] is None


def test_an_environment_without_windows_is_not_held(repo):
    result = update(options(repo), "dev", images=["web=1.2.0"], clock=clock(FRIDAY_EVENING))
    assert result.changed


def test_nothing_to_change_is_not_held(repo):
    result = update(options(repo), "prod", images=["web=1.0.0"], clock=clock(FRIDAY_EVENING))
    assert not result.changed


def test_a_dry_run_is_held_as_the_real_run_would_be(repo):
    with pytest.raises(Held):
        update(options(repo, dry_run=True), "prod", images=["web=1.2.0"],
               clock=clock(FRIDAY_EVENING))  # fmt: skip


def test_freeze_over_the_window_holds_until_the_day_after(repo):
    in_freeze = at(2026, 12, 21, 10, 0)
    with pytest.raises(Held) as caught:
        update(options(repo), "prod", images=["web=1.2.0"], clock=clock(in_freeze))
    assert 'prod: held: freeze "year-end" through 2027-01-04; next opening ' \
           "2027-01-05T09:00:00+01:00 (Tue 2027-01-05 09:00 CET)" in str(caught.value)  # fmt: skip
    assert caught.value.as_dict()["window"]["freeze"]["reason"] == "year-end"


def test_rollback_is_held_too(repo):
    update(options(repo), "prod", images=["web=1.2.0"], clock=clock(MONDAY_MORNING))
    before = repo.sha("env/prod")
    with pytest.raises(Held):
        rollback(options(repo), "prod", steps=1, clock=clock(FRIDAY_EVENING))
    assert repo.sha("env/prod") == before
    done = rollback(options(repo), "prod", steps=1, clock=clock(FRIDAY_EVENING),
                    override_window="bad release")  # fmt: skip
    assert done.changed
    assert "Promoter-Override-Window: bad release" in commit_message(repo.path, "env/prod")


def test_promote_fan_out_holds_each_target_on_its_own(repo):
    results = promote(options(repo), source="dev", clock=clock(FRIDAY_EVENING))
    by_target = {r.target: r for r in results.results}
    assert by_target["staging"].changed and by_target["staging"].outcome == 0
    prod = by_target["prod"]
    assert prod.outcome == 4 and not prod.changed
    data = prod.as_dict()
    assert data["held"] is True
    assert data["next_opening"] == "2026-11-30T09:00:00+01:00"
    assert data["reason"] == 'outside "Mon-Thu 09:00-16:00 Europe/Berlin"'
    assert by_target["staging"].as_dict()["held"] is False
    assert results.exit_code == 4
    assert repo.read_file("env/prod", "apps/web/values.yaml") == VALUES


def test_promote_one_target_held_raises_and_the_override_records(repo):
    with pytest.raises(Held):
        promote(options(repo), targets=["prod"], clock=clock(FRIDAY_EVENING))
    results = promote(options(repo), targets=["prod"], clock=clock(FRIDAY_EVENING),
                      override_window="customer escalation")  # fmt: skip
    [result] = results.results
    assert result.changed and result.as_dict()["override_window"] == "customer escalation"
    assert "Promoter-Override-Window: customer escalation" in commit_message(repo.path, "env/prod")


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("two\nlines", "holds a line break or control character"),
        ("   ", "--override-window is empty"),
        ("x" * 201, "longer than 200 characters"),
    ],
)
def test_a_bad_override_reason_is_exit_2_before_any_git_io(capsys, reason, says):
    # Nothing listens on port 9: any git I/O would fail with exit 1, not 2.
    run = run_cli(capsys, "--repo", "http://127.0.0.1:9/x/y.git", "update", "prod",
                  "--image", "web=1.2.0", "--override-window", reason)  # fmt: skip
    assert run.code == 2, run.err
    assert says in run.err and run.err.count("\n") == 1
    with pytest.raises(UsageError):
        promote(Options(repo="http://127.0.0.1:9/x/y.git"), targets=["prod"],
                override_window=reason)  # fmt: skip
    with pytest.raises(UsageError):
        rollback(Options(repo="http://127.0.0.1:9/x/y.git"), "prod", steps=1,
                 override_window=reason)  # fmt: skip


# The CLI at today's real time: a freeze over every day it could run on.
FROZEN = CONFIG.replace("{from: 2026-12-20, to: 2027-01-04, reason: year-end}",
                        "{from: 2000-01-01, to: 2999-12-31, reason: migration}")  # fmt: skip


@pytest.fixture
def frozen(env_repo):
    return env_repo({"main": files(FROZEN), "env/dev": files(FROZEN, "1.1.0"),
                     "env/prod": files(FROZEN), "env/staging": files(FROZEN)})  # fmt: skip


def test_cli_held_is_exit_4_with_one_line_and_the_json_object(frozen, capsys):
    before = frozen.sha("env/prod")
    args = ("--repo", frozen.url, "--token", TEST_TOKEN)
    run = run_cli(capsys, *args, "update", "prod", "--image", "web=1.2.0")
    assert run.code == 4
    assert run.out == ""
    assert run.err == (
        'promoter: error: prod: held: freeze "migration" through 2999-12-31; next opening '
        "3000-01-01T09:00:00+01:00 (Wed 3000-01-01 09:00 CET); nothing written (for an "
        'emergency: --override-window "<reason>")\n'
    )
    run = run_cli(capsys, *args, "--output", "json", "update", "prod", "--image", "web=1.2.0")
    assert run.code == 4
    data = json.loads(run.out)
    assert data["held"] is True and data["changed"] is False
    assert data["environment"] == "prod"
    assert data["reason"] == 'freeze "migration" through 2999-12-31'
    assert data["next_opening"] == "3000-01-01T09:00:00+01:00"
    assert data["window"]["open"] is False
    assert data["command"] == "update"  # the action's job summary says why it stopped
    summary = ci_summary(result_kind(data), data, "update")
    assert "**prod**: held (exit 4): " + md_text("prod: held: freeze") in summary
    run = run_cli(capsys, *args, "--output", "json", "promote", "--to", "prod")
    assert run.code == 4 and json.loads(run.out)["held"] is True
    run = run_cli(capsys, *args, "--output", "json", "promote", "--from", "dev")
    assert run.code == 4
    assert [(r["to"], r["held"], r["exit_code"]) for r in json.loads(run.out)] == [
        ("staging", False, 0), ("prod", True, 4)]  # fmt: skip
    assert frozen.sha("env/prod") == before


def test_cli_override_goes_through_and_is_recorded(frozen, capsys):
    args = ("--repo", frozen.url, "--token", TEST_TOKEN, "--output", "json")
    run = run_cli(capsys, *args, "update", "prod", "--image", "web=1.2.0",
                  "--override-window", "INC-9: payments down")  # fmt: skip
    assert run.code == 0, run.err
    assert json.loads(run.out)["override_window"] == "INC-9: payments down"
    assert "going ahead for --override-window: INC-9: payments down" in run.err
    trailers = commit_message(frozen.path, "env/prod").splitlines()
    assert "Promoter-Override-Window: INC-9: payments down" in trailers


def test_wait_is_not_held(frozen, github_api, capsys):
    github_api.add_status(frozen.name, frozen.sha("env/prod"), "argocd/web", "success")
    run = run_cli(capsys, "--repo", frozen.url, "--token", TEST_TOKEN, "--forge", "github",
                  "--api-url", github_api.api_url, "wait", "prod", "--require", "argocd/*",
                  "--timeout", "5s")  # fmt: skip
    assert run.code == 0, run.err


def test_override_by_pull_request_is_in_the_body_as_markdown_text(env_repo, github_api, capsys):
    config = FROZEN.replace("    from: dev\n", "    from: dev\n    delivery: pull-request\n", 1)
    repo = env_repo({"main": files(config), "env/dev": files(config), "env/prod": files(config)})
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
                  "--api-url", github_api.api_url, "update", "prod", "--image", "web=1.2.0",
                  "--override-window", "INC-1 [sev1](http://x) *now*")  # fmt: skip
    assert run.code == 0, run.err
    [pull] = github_api.pulls(repo.name)
    assert r"**Deploy window overridden:** INC-1 \[sev1\]\(http\://x\) \*now\*" in pull.body
    assert "Promoter-Override-Window: INC-1 [sev1](http://x) *now*" in commit_message(
        repo.path, "promoter/update-prod"
    )


# --- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "prod_text", "prod_json"),
    [
        (at(2026, 11, 30, 10, 0), "open until Mon 16:00 CET",
         {"open": True, "next_closing": "2026-11-30T16:00:00+01:00",
          "next_opening": "2026-12-01T09:00:00+01:00", "freeze": None}),
        (FRIDAY_EVENING, "closed, opens Mon 09:00 CET",
         {"open": False, "next_opening": "2026-11-30T09:00:00+01:00",
          "next_closing": "2026-11-30T16:00:00+01:00", "freeze": None}),
        (at(2026, 12, 22, 10, 0), "frozen (year-end) through 2027-01-04, opens Tue 2027-01-05 "
         "09:00 CET",
         {"open": False, "next_opening": "2027-01-05T09:00:00+01:00",
          "next_closing": "2027-01-05T16:00:00+01:00",
          "freeze": {"reason": "year-end", "from": "2026-12-20", "to": "2027-01-04",
                     "zone": "Europe/Berlin"}}),
    ],
)  # fmt: skip
def test_status_shows_whether_each_environment_is_open_and_when_that_changes(
    repo, moment, prod_text, prod_json
):
    result = read_status(options(repo, forge="none"), now=lambda: moment)
    table = render(result, "table")
    row = [line for line in table.splitlines() if line.startswith("window")]
    assert len(row) == 1 and row[0].split()[1:3] == ["open", "open"]  # dev, staging
    assert row[0].endswith(prod_text)
    prod = {env["name"]: env for env in result.as_dict()["environments"]}["prod"]["window"]
    assert {k: prod[k] for k in prod_json} == prod_json
    assert f"| window | open | open | {md_text(prod_text)} |" in render(result, "markdown")
