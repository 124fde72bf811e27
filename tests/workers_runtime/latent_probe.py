"""The built-in `tiny` adapter, with a decode that also returns the fp32 latent.

The latent's bytes travel as a second "image" of shape (nbytes, 1, 1), so a test
can compare the final latents of two runs to 1e-5, not only the uint8 images.
Loaded by workers through ``--adapter latent_probe:TinyLatentProbe``.
"""

import numpy as np
import torch

from gfdit.workers.adapter import load_adapter


class TinyLatentProbe:
    def __init__(self, model="tiny", *, device="cpu", dtype=torch.float32):
        self.inner = load_adapter(model, device=device, dtype=dtype)
        self.family = self.inner.family

    def encode(self, params):
        return self.inner.encode(params)

    def denoise(self, state, begin, end, sp):
        return self.inner.denoise(state, begin, end, sp)

    def decode(self, state):
        latent = state.tensors["latents"].detach().to(torch.float32).contiguous().cpu().numpy()
        raw = np.frombuffer(latent.tobytes(), dtype=np.uint8).reshape(-1, 1, 1)
        return [*self.inner.decode(state), raw]

    def state_nbytes(self, params):
        return self.inner.state_nbytes(params)


def latent_of(images):
    """The fp32 latent a probe's decode returned (its last image)."""
    return np.frombuffer(images[-1].tobytes(), dtype=np.float32)
