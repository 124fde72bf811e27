"""A finished generation: its images (as the server sent them) and its timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gfdit.client.media import DEFAULT_FPS, VIDEO_SUFFIXES, encode_video

RAW_MIME = "application/x-raw"


@dataclass
class Output:
    """One output frame: encoded image bytes (PNG) or a raw uint8 array."""

    mime: str
    data: bytes
    shape: tuple[int, ...] = ()
    dtype: str = "uint8"

    def to_png(self) -> bytes:
        """PNG bytes; raw arrays are encoded with Pillow."""
        if self.mime == "image/png":
            return self.data
        import io

        import numpy as np
        from PIL import Image

        array = np.frombuffer(self.data, dtype=self.dtype).reshape(self.shape)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass
class GenerationResult:
    """What `RequestHandle.result()` returns for a completed request."""

    request_id: str
    outputs: list[Output] = field(default_factory=list)
    latency_s: float = 0.0
    deadline_s: float | None = None
    slo_met: bool | None = None

    def save(self, path: str | Path, fps: int = DEFAULT_FPS) -> list[Path]:
        """Write the outputs. One image and a file name: that file. Several frames and `.mp4`
        (or `.zip`): one video file, MP4 when an encoder is installed (PyAV), else the
        PNG frames in `<stem>.zip` (`media.encode_video`). Several frames and another
        suffix: `<stem>_<i>.<suffix>` beside it. No suffix: the folder `path`, as
        `<request_id>[_<i>].png`. Returns the files written."""
        target = Path(path)
        if target.suffix:
            target.parent.mkdir(parents=True, exist_ok=True)
        if len(self.outputs) == 1 and target.suffix and target.suffix.lower() not in VIDEO_SUFFIXES:
            target.write_bytes(self.outputs[0].to_png())
            return [target]
        if target.suffix.lower() in VIDEO_SUFFIXES:
            data, _, suffix = encode_video(self.outputs, fps)
            written = target.with_suffix("." + suffix)
            written.write_bytes(data)
            return [written]
        if target.suffix:
            return [_write(target.with_name(f"{target.stem}_{i:03d}{target.suffix}"), out)
                    for i, out in enumerate(self.outputs)]
        target.mkdir(parents=True, exist_ok=True)
        names = [self.request_id] if len(self.outputs) == 1 else [f"{self.request_id}_{i:03d}"
                                                                  for i in range(len(self.outputs))]
        return [_write(target / f"{name}.png", out) for name, out in zip(names, self.outputs, strict=True)]


def _write(path: Path, output: Output) -> Path:
    path.write_bytes(output.to_png())
    return path


def outputs_from(entries: list[dict[str, str]], payload: list[bytes]) -> list[Output]:
    """Pair a Result's output descriptions with its payload frames."""
    outputs = []
    for entry, data in zip(entries, payload, strict=True):
        shape = tuple(int(x) for x in entry.get("shape", "").split(",") if x)
        outputs.append(Output(entry.get("mime", RAW_MIME), bytes(data), shape, entry.get("dtype", "uint8")))
    return outputs
