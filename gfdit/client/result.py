"""A finished generation: its images (as the server sent them) and its timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

    def save(self, path: str | Path) -> list[Path]:
        """Write the images: to `path` itself for one image with a suffix, else into the
        folder `path` as `<request_id>[_<i>].png`. Returns the files written."""
        target = Path(path)
        if len(self.outputs) == 1 and target.suffix:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.outputs[0].to_png())
            return [target]
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for i, out in enumerate(self.outputs):
            name = self.request_id if len(self.outputs) == 1 else f"{self.request_id}_{i:03d}"
            written.append(target / f"{name}.png")
            written[-1].write_bytes(out.to_png())
        return written


def outputs_from(entries: list[dict[str, str]], payload: list[bytes]) -> list[Output]:
    """Pair a Result's output descriptions with its payload frames."""
    outputs = []
    for entry, data in zip(entries, payload, strict=True):
        shape = tuple(int(x) for x in entry.get("shape", "").split(",") if x)
        outputs.append(Output(entry.get("mime", RAW_MIME), bytes(data), shape, entry.get("dtype", "uint8")))
    return outputs
