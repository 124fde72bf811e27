"""Request bodies: the OpenAI fields, then gfdit's own (steps, seed, request_class, ...).

Unknown fields are refused (a misspelt `step` would otherwise be silently ignored);
OpenAI fields that do not apply to a diffusion server (`quality`, `style`, `user`,
...) are accepted and ignored.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gfdit.http.errors import APIError

SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


class GfditFields(BaseModel):
    """What gfdit adds to the OpenAI request (all optional; the server's defaults otherwise)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str
    size: str | None = Field(None, description='"WxH" (e.g. "1024x1024"), or "auto": the model\'s default')
    steps: int | None = None
    seed: int | None = Field(None, description="None: a random seed, returned in the response")
    request_class: str | None = None
    deadline_s: float | None = None
    priority: int | None = None
    ranks: list[int] | None = Field(None, description="pin the request to these ranks (with its class's and "
                                    "stages' pools); a pin that cannot run is refused")
    negative_prompt: str = ""
    guidance_scale: float | None = None
    request_id: str | None = Field(None, description="your id for the request (with n > 1: ID-0, ID-1, ...)")
    user: str | None = None  # OpenAI's; ignored

    def shape(self) -> tuple[int | None, int | None]:
        """(width, height) from `size`; (None, None) for the model's default."""
        if self.size in (None, "", "auto"):
            return None, None
        match = SIZE.match(self.size)
        if not match:
            raise APIError(400, f'size must be "WIDTHxHEIGHT" (e.g. "1024x1024") or "auto", got {self.size!r}',
                           param="size", code="invalid_value")
        return int(match.group(1)), int(match.group(2))


class ImageRequest(GfditFields):
    """`POST /v1/images/generations`."""

    n: int = Field(1, ge=1, le=16)
    response_format: Literal["b64_json", "url"] = "b64_json"
    output_format: Literal["png"] | None = None
    quality: str | None = None  # OpenAI's; ignored
    style: str | None = None  # OpenAI's; ignored
    background: str | None = None  # OpenAI's; ignored
    moderation: str | None = None  # OpenAI's; ignored


class VideoRequest(GfditFields):
    """`POST /v1/videos` (OpenAI's video-job shape): `seconds` at `fps`, or `frames` directly."""

    seconds: str | int | None = None
    fps: int = Field(16, ge=1, le=120)
    frames: int | None = None

    def frame_count(self) -> int | None:
        """`frames`, else 4*round(seconds*fps/4)+1 (the 4k+1 counts video models take), else None."""
        if self.frames is not None:
            return self.frames
        if self.seconds is None:
            return None
        try:
            seconds = float(self.seconds)
        except ValueError:
            raise APIError(400, f"seconds must be a number, got {self.seconds!r}", param="seconds",
                           code="invalid_value") from None
        return 4 * max(1, round(seconds * self.fps / 4)) + 1
