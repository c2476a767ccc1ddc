"""Every command the README and docs/ show still works: each `flywheel …` command's subcommand
answers `--help`, and every flag the docs give it is one that subcommand has; every
`python -m bench.…` command names a script that exists and flags it defines.

The CLI is found the way `./flywheel` finds it (the console script the wrapper execs, as
pyproject.toml declares it), so the test follows the CLI if it moves. Only `--help` runs: nothing
is set up, served or trained.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import runpy
import shlex
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
SUBCOMMAND = re.compile(r"^[a-z][a-z-]*$")
FLAG = re.compile(r"^--[a-z][a-z0-9-]*")


def entry_point() -> tuple[str, str | None]:
    """(module, function) behind `./flywheel`: the console script it execs, or a `-m` module."""
    wrapper = (ROOT / "flywheel").read_text()
    exec_line = next(line for line in wrapper.splitlines() if line.strip().startswith("exec "))
    if module := re.search(r"\s-m\s+([\w.]+)", exec_line):
        return module.group(1), None
    script = re.search(r"/bin/([\w-]+)\"?\s", exec_line)
    assert script, f"cannot tell what ./flywheel runs from: {exec_line}"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts[script.group(1)].split(":")
    return module, function


@cache
def run_cli(*args: str) -> tuple[int, str]:
    """The CLI run in-process with `args`, as its console script would run it: (exit, stdout)."""
    module, function = entry_point()
    out = io.StringIO()
    saved = sys.argv
    sys.argv = ["flywheel", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            if function:
                getattr(importlib.import_module(module), function)()
            else:
                runpy.run_module(module, run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        sys.argv = saved
    return code, out.getvalue()


def code_lines(text: str) -> list[str]:
    """Shell lines in fenced and indented code blocks, continuations joined, and the inline
    code spans that are a `flywheel` command."""
    lines, fenced, indented, previous = [], False, False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            lines.append(line)
        elif line.startswith("    ") and (indented or not previous.strip()):
            indented = True
            lines.append(line[4:])
        else:
            indented = indented and not line.strip()
            for span in re.findall(r"`([^`\n]+)`", line):
                if re.match(r"^(\./)?flywheel\s", span):
                    lines.append(span)
        previous = line
    joined, carry = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            carry += line.rstrip()[:-1] + " "
            continue
        joined.append(carry + line)
        carry = ""
    return joined


def words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: a JSON example, not a command
        return []


def flywheel_commands() -> list[tuple[str, list[str]]]:
    """(where, arguments after `flywheel`) for every documented `flywheel` command."""
    module = entry_point()[0]
    found = []
    for page in PAGES:
        for line in code_lines(page.read_text()):
            argv = words(line)
            while argv and ENV_ASSIGNMENT.match(argv[0]):
                argv = argv[1:]
            if argv and argv[0] in ("flywheel", "./flywheel"):
                found.append((f"{page.relative_to(ROOT)}: {line.strip()}", argv[1:]))
            elif "accelerate" in argv and "-m" in argv:
                named = argv[argv.index("-m") + 1]
                assert named == module, (
                    f"{page.relative_to(ROOT)}: `accelerate launch -m {named}`, but ./flywheel "
                    f"runs {module}: {line.strip()}"
                )
                rest = argv[argv.index("-m") + 2 :]
                found.append((f"{page.relative_to(ROOT)}: {line.strip()}", rest))
    return [(where, args) for where, args in found if args and SUBCOMMAND.match(args[0])]


COMMANDS = flywheel_commands()


def command_path(args: list[str], where: str) -> list[str]:
    """The subcommand words at the start of `args` (`adapters add`, not `adapters add tone`)."""
    path = [args[0]]
    for word in args[1:]:
        if path == ["test"] or not SUBCOMMAND.match(word):
            break  # `flywheel test` hands everything after it to pytest
        code, out = run_cli(*path, word, "--help")
        assert code == 0, f"`flywheel {' '.join(path)}` has no {word!r} ({where})"
        if not out.startswith(f"usage: flywheel {' '.join([*path, word])} "):
            break  # a positional argument, not a subcommand
        path.append(word)
    return path


def test_the_readme_shows_the_two_commands():
    readme = [args for where, args in COMMANDS if where.startswith("README.md")]
    assert ["up"] in readme and ["test"] in readme


@pytest.mark.parametrize("subcommand", sorted({args[0] for _, args in COMMANDS}))
def test_every_documented_command_answers_help_and_has_its_flags(subcommand):
    for where, args in COMMANDS:
        if args[0] != subcommand:
            continue
        path = command_path(args, where)
        code, help_text = run_cli(*path, "--help")
        assert code == 0 and help_text.startswith(f"usage: flywheel {' '.join(path)}"), (
            f"`flywheel {' '.join(path)} --help` failed ({where})"
        )
        if path[0] == "test":
            continue  # the rest is pytest's
        for word in args[len(path) :]:
            if flag := FLAG.match(word):
                assert re.search(rf"(?<![\w-]){re.escape(flag.group())}(?![\w-])", help_text), (
                    f"`flywheel {' '.join(path)}` has no {flag.group()} ({where})"
                )


def bench_commands() -> list[tuple[str, str, list[str]]]:
    """(where, module, arguments) for every documented `python -m bench.…` command."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for line in code_lines(text) + re.findall(r"`([^`\n]*-m bench\.[^`\n]*)`", text):
            argv = words(line)
            if "-m" in argv and argv.index("-m") + 1 < len(argv):
                module = argv[argv.index("-m") + 1]
                if re.fullmatch(r"bench\.\w+", module):
                    where = f"{page.relative_to(ROOT)}: {line.strip()}"
                    found.append((where, module, argv[argv.index("-m") + 2 :]))
    return found


@pytest.mark.parametrize("where, module, args", bench_commands(), ids=lambda v: str(v)[:60])
def test_every_documented_bench_command_names_a_script_and_its_flags(where, module, args):
    script = ROOT / (module.replace(".", "/") + ".py")
    assert script.is_file(), f"no {script.relative_to(ROOT)} ({where})"
    source = script.read_text()
    for word in args:
        if flag := FLAG.match(word.lstrip("[")):  # `[--pairs 32]`: an optional flag
            assert f'"{flag.group()}"' in source, f"{module} has no {flag.group()} ({where})"
