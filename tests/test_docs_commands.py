"""The `anyprec` commands quoted in README.md and docs/*.md exist as written.

Every quoted command names a real subcommand and only options that subcommand has (a
renamed or removed flag fails here, not in a user's terminal). Commands in fenced code
blocks are meant to be copied whole, so they must also parse completely: required
options given, values accepted by argparse. Inline mentions in prose may be fragments
(`anyprec build --slack`), so for them only the names are checked.
"""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from anyprec.host.cli import build_parser

ROOT = Path(__file__).parents[1]
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
#: A command, not quoted output such as "anyprec verify: digits test split ...".
COMMAND = re.compile(r"anyprec (-|<|[a-z/]+( |$))")


def _quoted():
    """(file name, command, whether it is from a code block) for every quoted command."""
    found = []
    for path in FILES:
        text = path.read_text()
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        for block in blocks:
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                line = re.sub(r"^(\$ |\.venv/bin/)", "", line)
                # (output lines such as "anyprec verify: ..." are not commands)
                if COMMAND.match(line):
                    found.append((path.name, line, True))
        prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
        for cmd in re.findall(r"`(?:\.venv/bin/)?(anyprec [^`]+)`", prose):
            # (quoted output such as `anyprec stream: error: ...` is not a command)
            if COMMAND.match(cmd):
                found.append((path.name, cmd.replace("\\|", "|"), False))
    return sorted(set(found))


QUOTED = _quoted()


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("anyprec has no subcommands")


def test_docs_quote_commands():
    # The scan itself: the README's quick start and the board docs quote many.
    assert len(QUOTED) >= 30
    assert any(block for _, _, block in QUOTED)


@pytest.mark.parametrize("name,cmd,block", QUOTED,
                         ids=[f"{n}:{c[:60]}" for n, c, _ in QUOTED])
def test_quoted_command_exists(name, cmd, block):
    subs = _subparsers(build_parser())
    # Placeholders (`anyprec <command> --help`) and alternatives (`build/estimate`).
    words = cmd.split()
    if words[1].startswith("<"):
        return
    if words[1].startswith("-"):
        assert words[1] in ("--help", "-h", "--version"), (name, cmd)
        return
    for sub in words[1].split("/"):
        assert sub in subs, f"{name}: `{cmd}`: no subcommand {sub!r}"
        known = set(subs[sub]._option_string_actions)
        for word in words[2:]:
            if re.match(r"--?[A-Za-z]", word):
                option = word.split("=", 1)[0].rstrip(",.;:)")
                assert option in known, f"{name}: `{cmd}`: `anyprec {sub}` has no {option}"
    if not block or any(t in cmd for t in ("...", "<", "[", "|", "$")):
        return
    err = []

    class Quiet(argparse.ArgumentParser):
        def error(self, message):
            err.append(message)
            raise SystemExit(2)

    parser = build_parser()
    for sub in _subparsers(parser).values():
        sub.error = Quiet.error.__get__(sub)
    try:
        parser.parse_args(shlex.split(cmd)[1:])
    except SystemExit as e:
        assert e.code in (0, None), f"{name}: `{cmd}` does not parse: {err}"
