"""The OpenAI-compatible HTTP gateway (`gfdit serve --http-port`, `gfdit gateway`).

Files, one concept each: `listener.py` (uvicorn on a thread, bind rules), `app.py`
(the FastAPI app), `gateway.py` (what the endpoints share: the ZeroMQ client),
`feeds.py` (one event feed per request, many readers), `submit.py` (body -> requests
-> results), `images.py`, `videos.py`, `lifecycle.py` (SSE events, cancel),
`service.py` (models, health, metrics), `schemas.py`, `errors.py` (OpenAI's error
shape), `auth.py` (bearer token), `files.py` (URLs of results); video encoding is the
client's (`gfdit/client/media.py`). Needs the `http` extra (fastapi, uvicorn).
"""
