"""`Client`: the Python interface to a running gfdit server."""

from __future__ import annotations

import uuid
from typing import Iterable
from pathlib import Path

from gfdit.client.connection import Connection
from gfdit.client.errors import RequestRejected, ServerError
from gfdit.client.handle import RequestHandle
from gfdit.resources import policy_file
from gfdit.protocol import (
    DEFAULT_ADDRESS,
    Accepted,
    Ack,
    Cancel,
    ErrorReply,
    GenParams,
    MetricsQuery,
    MetricsReply,
    Operate,
    Ping,
    Pong,
    Rejected,
    ReloadPolicy,
    ReloadReply,
    ServerMessage,
    StatusQuery,
    StatusReply,
    StopServer,
    Submit,
    Subscribe,
)


class Client:
    """Talks to one server over ZeroMQ; safe to share between threads.

    >>> client = Client("tcp://127.0.0.1:7600")
    >>> handle = client.submit("a red fox", request_class="S", steps=8)
    >>> for event in handle.progress(): print(event.state)
    >>> handle.result().save("fox.png")
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, token: str = "", timeout: float = 30.0,
                 gone_after_s: float = 15.0):
        self.timeout = timeout
        self._conn = Connection(address, token, gone_after_s=gone_after_s)

    def submit(
        self,
        prompt: str,
        *,
        height: int | None = None,
        width: int | None = None,
        frames: int = 1,
        steps: int | None = None,
        seed: int = 0,
        request_class: str | None = None,
        deadline: float | None = None,
        priority: int | None = None,
        negative_prompt: str = "",
        guidance_scale: float | None = None,
        request_id: str | None = None,
        text_seq_len: int | None = None,
        latent_seq_len: int | None = None,
        preemptible: bool | None = None,
        ranks: Iterable[int] | None = None,
    ) -> RequestHandle:
        """Submit one request; returns its handle, or raises RequestRejected.

        height/width/steps left None take the served model's defaults (0 or less is
        refused); the handle's `params` holds what the server will run. `deadline` is in
        seconds from now and wins over the class's SLO; `priority` wins over the
        class's priority. `ranks` pins it to those ranks (with its class's and stages' pools);
        a pin the cluster or policy can never satisfy is rejected with the reason.
        """
        params = GenParams(
            prompt=prompt, height=height, width=width, steps=steps, seed=seed,
            frames=frames, negative_prompt=negative_prompt, guidance_scale=guidance_scale,
        )
        request_id = request_id or uuid.uuid4().hex[:12]
        msg = Submit(
            params=params, request_class=request_class or "", deadline_s=deadline, priority=priority,
            request_id=request_id, text_seq_len=text_seq_len, latent_seq_len=latent_seq_len,
            preemptible=preemptible, ranks=None if ranks is None else sorted(ranks),
        )
        mine = self._conn.track(request_id)  # before sending: the first event may beat the reply
        reply = self._call(msg, expect=(Accepted, Rejected), untrack=request_id if mine else None)
        if isinstance(reply, Rejected):
            if mine:
                self._conn.untrack(request_id)
            raise RequestRejected(reply.reason, reply.code)
        self._conn.own(request_id, reply.instance)
        return RequestHandle(self._conn, request_id, reply.params)

    def follow(self, request_id: str) -> RequestHandle:
        """A handle on a request submitted elsewhere: its progress from now on, and result."""
        mine = self._conn.track(request_id)
        reply = self._call(Subscribe(request_id=request_id), expect=(Ack,), untrack=request_id if mine else None)
        self._conn.own(request_id, reply.instance)
        return RequestHandle(self._conn, request_id)

    def status(self, request_id: str = "") -> dict:
        """The server's state; with `request_id`, {"server": ..., "request": ...}."""
        reply = self._call(StatusQuery(request_id=request_id), expect=(StatusReply,))
        return {"server": reply.server, "request": reply.request} if request_id else reply.server

    def requests(self) -> list[dict]:
        """Every live request (the oldest 1,000): id, state, class, steps done, width, size."""
        return self._call(StatusQuery(requests=True), expect=(StatusReply,)).requests

    def cancel(self, request_id: str) -> str:
        """Cancel a request by id (submitted anywhere); returns what happened, like
        `RequestHandle.cancel`. Raises ServerError("unknown_request") for an unknown id."""
        return self._call(Cancel(request_id=request_id), expect=(Ack,)).state

    def metrics(self) -> dict:
        """{"overall": {...}, "classes": {...}, "prometheus": text}."""
        reply = self._call(MetricsQuery(), expect=(MetricsReply,))
        return {**reply.summary, "prometheus": reply.prometheus}

    def reload_policy(self, path_or_text: str | Path, if_revision: str | None = None,
                      *, server_path: bool = False) -> ReloadReply:
        """Propose a new policy. A local file's text is sent (or, with server_path, the
        path is read by the server); a shipped policy's name (`slo_grow`) sends that
        policy; anything else is taken as policy text. Returns the ReloadReply: ok,
        revision, and every diagnostic when refused."""
        return self._call(self._policy_message(path_or_text, if_revision, server_path), expect=(ReloadReply,))

    @staticmethod
    def _policy_message(path_or_text: str | Path, if_revision: str | None, server_path: bool) -> ReloadPolicy:
        """What `reload_policy` sends for its argument (see there)."""
        text = str(path_or_text)
        looks_like_path = isinstance(path_or_text, Path) or ("\n" not in text and text.endswith(".gfp"))
        shipped = None if looks_like_path or server_path or "\n" in text else policy_file(text.strip())
        if server_path:
            return ReloadPolicy(path=text, if_revision=if_revision)
        elif shipped is not None:
            return ReloadPolicy(text=shipped.read_text(), path=str(shipped), if_revision=if_revision)
        elif looks_like_path and not Path(text).is_file():
            raise FileNotFoundError(f"policy file not found: {text}")
        elif looks_like_path or ("\n" not in text and Path(text).is_file()):
            return ReloadPolicy(text=Path(path_or_text).read_text(), path=str(path_or_text), if_revision=if_revision)
        else:
            return ReloadPolicy(text=str(path_or_text), if_revision=if_revision)

    def record(self, path: str | Path | None, *, prompts: bool = False) -> dict:
        """Start recording the server's arrivals to `path` (a trace on the server's machine,
        the format `gfdit simulate` reads; prompts and seeds only with `prompts`), or stop
        with None. Returns {"recording": the new recording's status or None, "stopped": the
        previous one's or None}."""
        msg = Operate(op="record", path=None if path is None else str(path), prompts=prompts)
        return self._call(msg, expect=(StatusReply,)).server

    def cost_model(self, out: str | Path) -> Path:
        """Write the server's cost model (calibrated at its start, or the one it was given) to the
        directory `out`, here, with the one cost-model writer; returns `out`."""
        from gfdit.costmodel_file import write_cost_model

        docs = self._call(Operate(op="cost_model"), expect=(StatusReply,)).server
        return write_cost_model(out, {int(k): v for k, v in docs["layouts"].items()}, docs["migration"])

    def shadow_policy(self, path_or_text: str | Path | None, *, server_path: bool = False) -> ReloadReply | dict:
        """Run a candidate policy beside the live one (its decisions are compared, never applied;
        `status()["shadow"]` reports them and its predicted metrics); the argument is read as by
        `reload_policy`. None clears the candidate (returns {"shadow": None, "cleared": ...})."""
        if path_or_text is None:
            return self._call(Operate(op="shadow"), expect=(StatusReply,)).server
        reload = self._policy_message(path_or_text, None, server_path)
        msg = Operate(op="shadow", text=reload.text, path=reload.path)
        return self._call(msg, expect=(ReloadReply,))

    def promote(self, if_revision: str | None = None) -> ReloadReply:
        """Swap the shadowed candidate in (refused unless `if_revision`, when given, is running)."""
        return self._call(Operate(op="promote", if_revision=if_revision), expect=(ReloadReply,))

    def ping(self) -> float:
        """The server's engine clock; raises ServerGone or TimeoutError when it is not there."""
        return self._call(Ping(), expect=(Pong,)).time

    def stop_server(self, reason: str = "") -> None:
        self._call(StopServer(reason=reason), expect=(Ack,))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, msg, expect: tuple[type, ...], untrack: str | None = None) -> ServerMessage:
        try:
            reply, _ = self._conn.call(msg, self.timeout)
        except BaseException:
            if untrack:
                self._conn.untrack(untrack)
            raise
        if isinstance(reply, ErrorReply):
            if untrack:
                self._conn.untrack(untrack)
            if reply.code == "invalid" and isinstance(msg, Submit):
                raise RequestRejected(reply.message, "invalid")
            raise ServerError(reply.code, reply.message)
        if not isinstance(reply, expect):
            raise ServerError("protocol", f"unexpected reply {type(reply).__name__}")
        return reply
