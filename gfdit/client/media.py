"""A video's frames as one file: MP4 (H.264) when PyAV is installed, else a ZIP of PNG frames.

Used by `GenerationResult.save` (`gfdit generate --out x.mp4`) and the HTTP gateway's video jobs.
"""

from __future__ import annotations

import io
import zipfile

DEFAULT_FPS = 16  # Wan's frame rate
VIDEO_SUFFIXES = (".mp4", ".zip")


def has_mp4_encoder() -> bool:
    try:
        import av  # noqa: F401 -- optional: PyAV brings its own ffmpeg
    except ImportError:
        return False
    return True


def encode_video(frames: list, fps: int) -> tuple[bytes, str, str]:
    """(data, media type, file suffix) for `frames` (gfdit.client Output, one per frame)."""
    if has_mp4_encoder():
        return _mp4(frames, fps), "video/mp4", "mp4"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i, frame in enumerate(frames):
            archive.writestr(f"frame_{i:05d}.png", frame.to_png())
    return buffer.getvalue(), "application/zip", "zip"


def _mp4(frames: list, fps: int) -> bytes:
    import av
    import numpy as np
    from PIL import Image

    arrays = [np.asarray(Image.open(io.BytesIO(frame.to_png())).convert("RGB")) for frame in frames]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = arrays[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for array in arrays:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()
