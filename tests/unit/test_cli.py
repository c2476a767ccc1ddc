"""Every command explains itself (`--help`), and set-up mistakes give one-line answers."""

import argparse
import subprocess
import sys

import pytest

from cli.main import make_parser


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", ["up", "train", "test", "adapters", "keys"])
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert f"usage: flywheel {command}" in result.stdout
    sub = make_parser()._subparsers._group_actions[0]
    assert sub.choices[command].description or any(
        a.help for a in sub._choices_actions if a.dest == command
    )


def _parsers(parser, path="flywheel"):
    """Every parser and sub-parser, with the command line that reaches it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_option_has_help():
    for path, parser in _parsers(make_parser()):
        for action in parser._actions:
            assert action.help, f"{path} {action.option_strings or action.dest} has no help"


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


def test_up_refuses_a_public_host_without_api_keys(tmp_path):
    from serve.engine import free_port

    result = run("up", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "without API keys" in result.stderr and "flywheel keys create" in result.stderr


def test_max_lora_rank_is_one_flag_for_the_engine_and_the_gateway(tmp_path):
    """Hardening 17: the refusal named --max-lora-rank, which was no flag; via --engine-arg it
    changed vLLM's rank and not the gateway's check."""
    from serve.config import Settings
    from serve.engine import engine_command
    from serve.gateway import build_services

    args = make_parser().parse_args(["up", "--max-lora-rank", "32"])
    assert args.max_lora_rank == 32
    settings = Settings("m", "m", data_dir=tmp_path, max_lora_rank=args.max_lora_rank)
    command = engine_command(settings, 8001)
    assert command[command.index("--max-lora-rank") + 1] == "32"
    assert build_services(settings).registry.max_rank == 32
    with pytest.raises(SystemExit):  # vLLM takes only its own values
        make_parser().parse_args(["up", "--max-lora-rank", "24"])
    for engine_arg in ("--engine-arg=--max-lora-rank=32", "--engine-arg=--max-model-len"):
        result = run("up", engine_arg, "--data-dir", str(tmp_path))
        assert result.returncode == 2
        flag = engine_arg.split("=")[1]
        assert f"use `flywheel up {flag} ...`" in result.stderr


def test_the_data_dir_is_one_place_whatever_the_current_directory(tmp_path, monkeypatch):
    """Hardening 18: the default was ./data, so running from another folder silently started an
    empty database there."""
    from serve.config import default_data_dir
    from serve.gateway import earlier_data_dir

    monkeypatch.delenv("FLYWHEEL_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    for cwd in (tmp_path, tmp_path / "elsewhere"):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        assert default_data_dir() == tmp_path / "share" / "flywheel"
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"
    # a database left in ./data by an earlier version is pointed out, not silently ignored
    monkeypatch.delenv("FLYWHEEL_HOME")
    (tmp_path / "elsewhere" / "data").mkdir()
    (tmp_path / "elsewhere" / "data" / "flywheel.db").write_bytes(b"")
    assert earlier_data_dir(default_data_dir()) == tmp_path / "elsewhere" / "data"
    assert earlier_data_dir(tmp_path / "chosen") is None  # --data-dir given: nothing to say


def test_the_ui_calls_the_gateway_where_it_listens():
    """Hardening 21: with `--host 192.168.1.5` the UI called 127.0.0.1, where nothing listened."""
    from serve.gateway import ui_api_base

    assert ui_api_base("127.0.0.1", 8000) == "http://127.0.0.1:8000/v1"
    assert ui_api_base("192.168.1.5", 8000) == "http://192.168.1.5:8000/v1"
    assert ui_api_base("0.0.0.0", 9000) == "http://127.0.0.1:9000/v1"
    assert ui_api_base("::", 9000) == "http://[::1]:9000/v1"
    assert ui_api_base("fd00::5", 9000) == "http://[fd00::5]:9000/v1"


def test_ui_exports_are_removed_not_left_in_tmp(monkeypatch):
    """Hardening 21: each export stayed in /tmp for ever."""
    import os

    from ui.data_tab import ExportFiles

    files = ExportFiles(keep_s=60)
    first = files.write("../flywheel-dpo.jsonl", b"{}\n")
    assert first.parent.parent == files.root and first.name == "flywheel-dpo.jsonl"
    os.utime(first.parent, (0, 0))  # an hour-old export
    second = files.write("flywheel-kto.jsonl", b"{}\n")
    assert not first.exists() and second.read_bytes() == b"{}\n"
    files.close()
    assert not files.root.exists()
