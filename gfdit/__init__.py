"""gfdit: a serving runtime for Diffusion Transformers that schedules GPU parallelism."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`gfdit.Client` is imported on first use, so `import gfdit` stays light."""
    if name == "Client":
        from gfdit.client import Client

        return Client
    raise AttributeError(f"module 'gfdit' has no attribute {name!r}")
