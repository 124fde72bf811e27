"""The decision log: one JSON line per decision, the same from the simulator and the server.

Every line has `t` (engine time, seconds), `event`, `policy` and `revision`;
then, as they apply: `request`, `task`, `stage`, `width`, `wanted`, `ranks`,
`state_ranks`, `rule` (the `Why.rule` that decided, e.g.
``policies/edf_best_fit.gfp:14`` or ``python:edf_best_fit.width``), `values`
(what that rule saw), `grown` (the grow rules that widened it), `order_key`
(the `order by` key, on dispatch and skip), `reason`.

Events: admit, reject, dispatch, skip (competed, got no ranks: what it wanted
and what was free; logged when it starts and when the reason changes), hold,
error (a hook raised: `hook`, `rule` = where, `reason`;
the hook's fallback applied, docs/engine.md "Rule errors"), fail, cancel, complete, restart,
retry, lost, policy. Fields are only added, never renamed (docs/engine.md).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import IO, Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class DecisionLog:
    """Writes decision records as JSON lines to a file, a stream, or a list kept in memory."""

    def __init__(self, sink: str | Path | IO[str] | list | None = None, *, line_buffered: bool = False):
        """`line_buffered`: a file sink is flushed at every line (a live server's log can be
        followed while it runs); the simulator leaves it off and writes in blocks."""
        self._owned: IO[str] | None = None
        self.records: list[dict] | None = None
        if sink is None or isinstance(sink, list):
            self.records = sink if isinstance(sink, list) else []
            self._stream: IO[str] | None = None
        elif isinstance(sink, (str, Path)):
            self._owned = self._stream = open(sink, "w", encoding="utf-8", buffering=1 if line_buffered else -1)
        else:
            self._stream = sink

    def write(self, record: dict) -> None:
        if self.records is not None:
            self.records.append(record)
            return
        assert self._stream is not None
        self._stream.write(json.dumps(_jsonable(record), separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def dumps(self) -> str:
        """The kept records as JSONL text (for an in-memory log)."""
        buf = io.StringIO()
        for record in self.records or ():
            buf.write(json.dumps(_jsonable(record), separators=(",", ":")) + "\n")
        return buf.getvalue()
