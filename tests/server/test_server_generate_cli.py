"""`gfdit generate`: negative prompt and guidance reach the server, progress without control codes
off a terminal (a tqdm bar on one), a video's frames written as one file, never a folder named x.mp4."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gfdit.cli.generate import Progress
from gfdit.client.media import has_mp4_encoder
from gfdit.client.result import RAW_MIME, GenerationResult, Output
from gfdit.protocol import Progress as ProgressEvent

ROOT = Path(__file__).resolve().parents[2]


def gfdit(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gfdit", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_negative_prompt_and_guidance_reach_the_server_and_progress_is_plain(server_factory):
    server = server_factory()
    done = gfdit("generate", "a fox", "--steps", "6", "--negative-prompt", "blurry", "--guidance-scale", "3.5",
                 "--address", server.address)
    assert done.returncode == 0, done.stderr
    assert "6 steps, seed 0, guidance 3.5, negative prompt 'blurry'" in done.stderr  # Accepted.params
    assert "\x1b" not in done.stderr and "\r" not in done.stderr  # stderr is a pipe: no control codes
    assert "step 6/6" in done.stderr
    refused = gfdit("generate", "a fox", "--guidance-scale", "500", "--address", server.address)
    assert refused.returncode == 1 and "guidance_scale must be in 0..100, got 500" in refused.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_tqdm_bar():
    stream = Terminal()
    show = Progress(stream)
    for step in (2, 4):
        show(ProgressEvent(request_id="r", seq=step, state="running", time=0.0, step=step, steps=4, width=2, ranks=(0, 1)))
    show.close()
    text = stream.getvalue()
    assert "4/4" in text and "100%" in text and "width 2" in text


def frames(n: int) -> list[Output]:
    return [Output(RAW_MIME, np.full((16, 16, 3), 40 * i, np.uint8).tobytes(), (16, 16, 3)) for i in range(n)]


def test_a_video_is_one_file_named_as_asked(tmp_path):
    result = GenerationResult("vid", frames(3))
    (written,) = result.save(tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").is_dir()
    if has_mp4_encoder():
        assert written == tmp_path / "clip.mp4" and written.read_bytes()[4:8] == b"ftyp"
    else:  # no encoder: the PNG frames, in one file beside it
        assert written == tmp_path / "clip.zip"
        with zipfile.ZipFile(written) as archive:
            assert archive.namelist() == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
            assert archive.read("frame_00001.png")[:8] == b"\x89PNG\r\n\x1a\n"
    pngs = result.save(tmp_path / "still.png")
    assert [p.name for p in pngs] == ["still_000.png", "still_001.png", "still_002.png"]
    assert [p.name for p in result.save(tmp_path / "folder")] == ["vid_000.png", "vid_001.png", "vid_002.png"]
    (one,) = GenerationResult("img", frames(1)).save(tmp_path / "one.png")
    assert one == tmp_path / "one.png" and one.is_file()
