"""Generated files served back for `response_format: "url"`: a bounded store by random id.

The id (128 random bits) is the capability, as with a pre-signed URL: `GET
/v1/files/{id}` needs no token. The oldest files go first once `max_files` or
`max_bytes` is passed, so memory stays bounded however many URLs were handed out.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict


class FileStore:
    def __init__(self, max_files: int = 256, max_bytes: int = 512 << 20):
        self.max_files, self.max_bytes = max_files, max_bytes
        self._files: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._bytes = 0

    def put(self, data: bytes, media_type: str) -> str:
        file_id = "file-" + secrets.token_urlsafe(16)
        self._files[file_id] = (media_type, data)
        self._bytes += len(data)
        while len(self._files) > self.max_files or (self._bytes > self.max_bytes and len(self._files) > 1):
            _, (_, old) = self._files.popitem(last=False)
            self._bytes -= len(old)
        return file_id

    def get(self, file_id: str) -> tuple[str, bytes] | None:
        return self._files.get(file_id)
