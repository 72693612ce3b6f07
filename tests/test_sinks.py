"""The encoders, one per sink, on their own: pure functions checked against what the consumer
(git, GitHub's runner, a Markdown renderer, a dotenv reader) would make of their output."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from promoter import fastimport, sinks
from promoter.errors import UsageError, register_secret
from promoter.message import Provenance, build_message, check_message
from promoter.model import Change

# --- log lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("::warning title=x::boom", "\\::warning title=x::boom"),
        ("   ::error::x", "   \\::error::x"),
        ("a ##[error]b", "a #\\#[error]b"),
        ("plain: a::b", "plain: a::b"),
        ("\x1b[31mred", "\\x1b[31mred"),
    ],
)
def test_the_log_guard_neutralises_workflow_commands(line, shown):
    assert sinks.guard_line(line) == shown


def test_the_guarded_stream_sees_lines_across_writes_and_line_breaks():
    inner = io.StringIO()
    stream = sinks.GuardedStream(inner)  # type: ignore[arg-type]
    stream.write("ok\n:")
    stream.write(":warning::x\r::set-output\n  tail")
    stream.flush()
    assert inner.getvalue() == "ok\n\\::warning::x\r\\::set-output\n  tail"


def test_the_guarded_stream_scrubs_registered_secrets():
    register_secret("s3cr3t-value-for-sinks")
    inner = io.StringIO()
    sinks.GuardedStream(inner).write("token s3cr3t-value-for-sinks here\n")  # type: ignore[arg-type]
    assert inner.getvalue() == "token *** here\n"


# --- Markdown -----------------------------------------------------------------------------------


def test_markdown_text_cannot_open_links_images_html_or_cells():
    shown = sinks.md_text("![x](https://e/x.png) <img src=x> a|b\n::warning")
    assert shown == "\\!\\[x\\]\\(https\\://e/x.png\\) \\<img src=x\\> a\\|b \\:\\:warning"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1.4.2", "`1.4.2`"),
        ("", '`""`'),
        (None, '`""`'),
        ("a`b|c", "<code>a&#96;b&#124;c</code>"),
        ("1.4\n![x](y)", "<code>1.4&#92;n&#33;&#91;x&#93;&#40;y&#41;</code>"),
    ],
)
def test_markdown_code_holds_any_value_in_one_cell(value, shown):
    assert sinks.md_code(value) == shown


# --- CI files -----------------------------------------------------------------------------------


def test_step_outputs_with_a_line_break_use_a_delimiter_not_in_the_value():
    assert sinks.output_lines("commit", "abc") == "commit=abc\n"
    text = sinks.output_lines("x", "a\nPROMOTER_EOF\nchanged=true")
    assert text == "x<<PROMOTER_EOF_\na\nPROMOTER_EOF\nchanged=true\nPROMOTER_EOF_\n"


def test_dotenv_values_stay_on_one_line():
    assert sinks.dotenv_line("PROMOTER_COMMIT", "a\nPROMOTER_CHANGED=true") == (
        "PROMOTER_COMMIT=a PROMOTER_CHANGED=true\n"
    )


def test_workflow_command_data_and_properties_are_escaped_as_the_runner_unescapes():
    assert sinks.command_data("50%\r\n::warning::x") == "50%25%0D%0A::warning::x"
    assert sinks.command_property("a: b, c") == "a%3A b%2C c"


# --- fast-import --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "email"),
    [
        ("a\nb", "a@b"),
        ("a <b", "a@b"),
        ("a>", "a@b"),
        ("a\x00", "a@b"),
        ("", "a@b"),
        ("a", "a b@c"),
        ("a", "a@b>"),
        ("a", "ab"),
        ("a", "a@b\nM 100644 inline x"),
    ],
)
def test_an_identity_git_could_not_read_back_is_refused(name, email):
    assert fastimport.identity_problem(name, email)
    with pytest.raises(UsageError):
        fastimport.Identity(name, email)


def test_paths_are_c_quoted_so_git_reads_them_back_whole(tmp_path):
    paths = ['a "b"/c.yaml', "new\nline.yaml", "tab\there.yaml", "back\\slash.yaml", "é.yaml"]

    def git(*args: str, stdin: bytes | None = None) -> str:
        who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@x", "PATH": os.environ["PATH"]}  # fmt: skip
        run = subprocess.run(
            ["git", *args], cwd=tmp_path, input=stdin, capture_output=True, env=who
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.decode()

    git("init", "-q", "--bare")
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    parent = git("commit-tree", empty_tree, "-m", "root").strip()
    who = fastimport.Identity("t", "t@example.com")
    files = {path: ("100644", b"x: 1\n") for path in paths}
    stream = fastimport.commit("refs/heads/t", parent, "m", who, who, 0, files)
    git("fast-import", "--quiet", "--done", stdin=stream)
    listed = git("ls-tree", "-r", "-z", "--name-only", "refs/heads/t").split("\0")[:-1]
    assert sorted(listed) == sorted(paths)


# --- commit messages ----------------------------------------------------------------------------


def _parsed_trailers(message: str) -> list[str]:
    out = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_the_trailer_block_is_always_what_git_reads():
    change = Change("web", "web/web", "values.yaml", "image.tag", "1.4.1\nPromoter-X: y", "1.4.2")
    body = check_message("deploy\n\nPromoter-Environment: prod\nSigned-off-by: x <x@y>")
    text = build_message("update", "dev", [change], Provenance(source="a" * 40), body)
    assert _parsed_trailers(text) == [
        "Promoter-Environment: dev",
        'Promoter-Change: web/web image.tag "1.4.1\\nPromoter-X: y" -> 1.4.2',
        f"Promoter-Source: {'a' * 40}",
    ]


@pytest.mark.parametrize(
    "text", ["x\n---\ny", "x\n--- \ny", "x\n# ------------------------ >8 ---\ny", "a\x00b", ""]
)
def test_a_message_that_would_hide_the_trailers_is_refused(text):
    with pytest.raises(UsageError):
        check_message(text)


def test_disclose_shows_the_sandbox_token_and_still_guards_the_line():
    register_secret("sbx_disclosed-token")
    inner = io.StringIO()
    stream = sinks.GuardedStream(inner)  # type: ignore[arg-type]
    stream.write("before ")
    sinks.disclose(stream, '{"token": "sbx_disclosed-token"}\n::warning::x')  # type: ignore[arg-type]
    assert inner.getvalue() == 'before {"token": "sbx_disclosed-token"}\n\\::warning::x\n'
