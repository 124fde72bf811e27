"""Policy files the server reads itself: no links followed, no pipes waited on, nothing else quoted."""

from __future__ import annotations

import json
import os
import time

import pytest

from gfdit.server.policy_file import MAX_POLICY_BYTES, PolicyFileError, read_policy_file

SECRET = "root:$6$s3cr3t-hash-nobody-may-see:19000:0:99999:7:::"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "shadow"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def test_a_symbolic_link_is_refused_not_followed(tmp_path, secret_file):
    link = tmp_path / "x.gfp"
    link.symlink_to(secret_file)
    with pytest.raises(PolicyFileError, match="symbolic link") as caught:
        read_policy_file(str(link))
    assert SECRET not in str(caught.value)


def test_a_named_pipe_is_refused_at_once(tmp_path):
    fifo = tmp_path / "hang.gfp"
    os.mkfifo(fifo)
    with pytest.raises(PolicyFileError, match="not a regular file"):
        read_policy_file(str(fifo))


@pytest.mark.parametrize("content, why", [
    (b"policy big\n" + b"# pad\n" * (MAX_POLICY_BYTES // 6), "a policy file is at most"),
    (b"policy p\n\x00\x01\x02", "binary"),
    (b"policy p\n\xff\xfe", "not UTF-8"),
])
def test_oversize_binary_and_undecodable_files_are_refused(tmp_path, content, why):
    path = tmp_path / "p.gfp"
    path.write_bytes(content)
    with pytest.raises(PolicyFileError, match=why):
        read_policy_file(str(path))


def test_a_policy_file_is_read(tmp_path, policy_texts):
    path = tmp_path / "p.gfp"
    path.write_text(policy_texts[0])
    assert read_policy_file(str(path)) == policy_texts[0]


@pytest.mark.slow
def test_reload_paths_on_a_running_server(server_factory, tmp_path, secret_file, policy_texts):
    from gfdit.client import Client

    server = server_factory()
    link, fifo, not_policy, typo = (tmp_path / n for n in ("x.gfp", "hang.gfp", "secret.gfp", "typo.gfp"))
    link.symlink_to(secret_file)
    os.mkfifo(fifo)
    not_policy.write_text(SECRET + "\n")
    typo.write_text(policy_texts[0].replace("order by req.arrival", "order by req.arival"))
    with Client(server.address, timeout=30) as client:
        replies = {p.name: client.reload_policy(str(p), server_path=True) for p in (link, fifo, not_policy, typo)}
        assert client.ping() >= 0  # the pipe froze nothing
        status = client.status()
    for name, reply in replies.items():
        assert not reply.ok, name
        assert "s3cr3t" not in reply.message + "".join(reply.diagnostics), (name, reply)
    assert "symbolic link" in replies["x.gfp"].message + "".join(replies["x.gfp"].diagnostics)
    assert "not a regular file" in "".join(replies["hang.gfp"].diagnostics)
    assert "not quoted" in replies["secret.gfp"].diagnostics[0]
    assert any("req.arival" in d for d in replies["typo.gfp"].diagnostics)  # a policy source is quoted
    assert "s3cr3t" not in json.dumps(status, default=str)


@pytest.mark.slow
def test_a_watched_file_replaced_by_a_link_is_refused_and_nothing_of_the_target_shows(
        server_factory, tmp_path, secret_file):
    from gfdit.client import Client

    server = server_factory()
    watched = server.config.policy
    with Client(server.address, timeout=30) as client:
        before = client.status()["revision"]
        os.unlink(watched)
        os.symlink(secret_file, watched)
        deadline = time.monotonic() + 30
        while client.status()["reloads"].get("last") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        status = client.status()
    assert status["revision"] == before
    assert status["reloads"]["last"]["ok"] is False
    assert "symbolic link" in json.dumps(status["reloads"]["last"])
    assert "s3cr3t" not in json.dumps(status, default=str)
