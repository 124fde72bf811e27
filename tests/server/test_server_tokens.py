"""Tokens off the command line: --token-file, $GFDIT_TOKEN, and a warned --token."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.cli.token import TokenError, add_token_arguments, resolve_token

ROOT = Path(__file__).resolve().parents[2]
QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")
TOKEN = "t0ken-of-more-than-16-chars"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_token_arguments(parser)
    return parser.parse_args(list(argv))


def token_file(tmp_path: Path, mode: int = 0o600, text: str = TOKEN + "\n") -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_private_token_file_is_read_quietly(tmp_path, capsys):
    assert resolve_token(parse("--token-file", str(token_file(tmp_path))), "t") == TOKEN
    assert capsys.readouterr().err == ""


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path, capsys):
    assert resolve_token(parse("--token-file", str(token_file(tmp_path, 0o644))), "t") == TOKEN
    assert "readable by others (mode 0644)" in capsys.readouterr().err


def test_a_token_on_the_command_line_works_with_a_warning(capsys):
    assert resolve_token(parse("--token", TOKEN), "t") == TOKEN
    assert "visible to every local user in `ps`" in capsys.readouterr().err


def test_the_environment_is_the_fallback(monkeypatch):
    monkeypatch.setenv("GFDIT_TOKEN", TOKEN)
    assert resolve_token(parse(), "t") == TOKEN
    monkeypatch.delenv("GFDIT_TOKEN")
    assert resolve_token(parse(), "t") == ""


@pytest.mark.parametrize("kind", ["directory", "fifo", "empty", "missing", "both"])
def test_token_files_that_are_not_a_token_are_refused(tmp_path, kind):
    path = tmp_path / "t"
    argv = ["--token-file", str(path)]
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opened without blocking: refused, not waited on
    elif kind == "empty":
        token_file(tmp_path, text="\n").rename(path)
    elif kind == "both":
        token_file(tmp_path).rename(path)
        argv += ["--token", TOKEN]
    with pytest.raises(TokenError, match="not a regular file|empty|cannot open|not both"):
        resolve_token(parse(*argv), "t")


@pytest.mark.slow
def test_serve_and_status_take_the_token_from_a_file_or_the_environment(tmp_path):
    from test_server_cli import free_port

    secret = token_file(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "GFDIT_TOKEN"} | {"PYTHONPATH": str(ROOT)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--num-gpus", "1", "--emulate", "--cost-model", QWEN,
         "--address", address, "--token-file", str(secret)],
        stdout=subprocess.PIPE, stderr=(tmp_path / "serve.log").open("w"), text=True, env=env, cwd=ROOT)
    try:
        assert "gfdit serving" in serve.stdout.readline(), (tmp_path / "serve.log").read_text()
        assert TOKEN.encode() not in Path(f"/proc/{serve.pid}/cmdline").read_bytes()

        def status(*extra, **more_env):
            return subprocess.run([sys.executable, "-m", "gfdit", "status", "--address", address, *extra],
                                  capture_output=True, text=True, env=env | more_env, cwd=ROOT, timeout=60)

        assert status("--token-file", str(secret)).returncode == 0
        assert status(GFDIT_TOKEN=TOKEN).returncode == 0
        warned = status("--token", TOKEN)
        assert warned.returncode == 0 and "visible to every local user" in warned.stderr
        refused = status()
        assert refused.returncode == 1 and "unauthorized" in refused.stderr
    finally:
        serve.terminate()
        serve.wait(timeout=60)
