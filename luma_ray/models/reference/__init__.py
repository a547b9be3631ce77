"""The reference model ``luma-tiny``: a small real text-to-video diffusion transformer.

``model`` holds ``LumaTiny`` (the ``VideoModel``), ``make_checkpoint`` and the sampler;
``network`` the PyTorch modules; ``text`` the hashed prompt tokenizer. Importing this package
imports torch but changes no global torch setting (threads, seeds, default dtype).
"""

from luma_ray.models.reference.model import LIMITS, LumaTiny, make_checkpoint
from luma_ray.models.reference.network import NetworkConfig, local_token_slice

__all__ = ["LIMITS", "LumaTiny", "NetworkConfig", "local_token_slice", "make_checkpoint"]
