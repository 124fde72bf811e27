"""gfdit: a serving runtime for Diffusion Transformers that schedules GPU parallelism."""

__version__ = "0.1.0"
