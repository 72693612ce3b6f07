"""receive-pack's answers as promoter.smarthttp reads them (the push promoter sends itself).

The happy path and git's own refusals run against the real server in test_gitrepo.py; these
are the answers a server can give that git's http-backend is hard to make give: a fatal error
on side band 3, an unpacker failure, messages around a refusal, and answers that are not
report-status at all (which must read as "no answer", so that git push takes over)."""

from __future__ import annotations

import pytest

from promoter.smarthttp import Report, pkt, push_report

REF = "refs/heads/env/dev"


def _band(n: int, data: bytes) -> bytes:
    return b"%04x" % (len(data) + 5) + bytes([n]) + data


def _status(*lines: str) -> bytes:
    return b"".join(pkt(line) for line in lines) + b"0000"


def test_ok_with_side_band():
    answer = _band(1, _status("unpack ok\n", f"ok {REF}\n")) + b"0000"
    assert push_report(answer, REF, side_band=True) == Report("ok", "", ())


def test_a_refusal_keeps_the_servers_messages_in_order():
    answer = (
        _band(2, b"remote policy: env/dev is protected\n")
        + _band(2, b"open a pull request\r\n")
        + _band(1, _status("unpack ok\n", f"ng {REF} pre-receive hook declined\n"))
        + b"0000"
    )
    assert push_report(answer, REF, side_band=True) == Report(
        "ng",
        "pre-receive hook declined",
        ("remote policy: env/dev is protected", "open a pull request"),
    )


def test_a_fatal_error_on_band_3_is_a_failure_not_a_verdict():
    # The ref may or may not have moved: the caller must look (git push does).
    answer = _band(2, b"working...\n") + _band(3, b"fatal: out of disk space\n") + b"0000"
    assert push_report(answer, REF, side_band=True) == Report(
        "failed", "fatal: out of disk space", ("working...", "fatal: out of disk space")
    )


@pytest.mark.parametrize("verdict", ["ok", "ng"])
def test_an_unpacker_error_is_a_failure_whatever_the_ref_line_says(verdict):
    line = f"ok {REF}\n" if verdict == "ok" else f"ng {REF} unpacker error\n"
    answer = _status("unpack index-pack abnormal exit\n", line)
    assert push_report(answer, REF, side_band=False) == Report("failed", "unpacker error", ())


def test_the_report_split_across_band_1_packets_is_read_whole():
    status = _status("unpack ok\n", f"ok {REF}\n")
    answer = _band(1, status[:7]) + _band(1, status[7:]) + b"0000"
    assert push_report(answer, REF, side_band=True) == Report("ok", "", ())


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"0000",
        b"<html>502 Bad Gateway</html>",
        _status("unpack ok\n", "ok refs/heads/other\n"),  # not our ref
        _status("unpack ok\n", f"ng {REF}\n"),  # no reason: not git's grammar
        _status("unpack ok\n", f"ok {REF}\n")[:-8],  # cut inside the ok packet
        b"0003" + _status("unpack ok\n", f"ok {REF}\n"),  # a length no packet has
    ],
)
def test_anything_else_is_no_answer(answer):
    # None: the caller lets git push look where the branch is (it may have moved or not).
    assert push_report(answer, REF, side_band=False) is None
