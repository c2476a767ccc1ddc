"""Every command explains itself (`--help`), and set-up mistakes give one-line answers."""

import subprocess
import sys

import pytest

from serve.cli import make_parser


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serve.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", ["up", "train", "test"])
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert f"usage: flywheel {command}" in result.stdout
    sub = make_parser()._subparsers._group_actions[0]
    assert sub.choices[command].description or any(
        a.help for a in sub._choices_actions if a.dest == command
    )


def test_every_option_has_help():
    sub = make_parser()._subparsers._group_actions[0]
    for name, parser in sub.choices.items():
        for action in parser._actions:
            assert action.help, f"flywheel {name} {action.option_strings} has no help"


def test_train_without_judgements_says_what_to_do(tmp_path):
    result = run("train", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no decisive comparisons" in result.stderr
    assert "Regenerate" in result.stderr


def test_up_on_a_busy_port_says_so(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("up", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--port" in result.stderr
