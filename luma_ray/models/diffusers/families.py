"""What luma_ray knows about each diffusers video pipeline class: frame and size rules, the
image-to-video class that shares its components, and where the transformer's output keeps
its channels (for the stub that fast-forwards a resumed run, parking.py).

Pure data; no torch or diffusers import. Wan and LTX-Video are tested; CogVideoX and
HunyuanVideo are listed from their pipelines' documented rules and are untested.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """The rules of one pipeline class.

    ``frame_step``: frame counts are ``frame_step * k + 1`` (the VAE's temporal compression).
    ``size_multiple``: height and width are multiples of it. ``image_class``: the pipeline
    class that takes a first frame with the same components (``from_pipe``), or ``None``.
    ``takes_image``: this class itself needs ``image=``. ``channel_dim``: the dimension of the
    transformer's output that holds the latent channels. ``guidance_scale``: the default.
    """

    name: str
    frame_step: int
    size_multiple: int
    channel_dim: int
    guidance_scale: float
    image_class: str | None = None
    takes_image: bool = False
    tested: bool = False


WAN = Family("wan", 4, 16, 1, 5.0, image_class="WanImageToVideoPipeline", tested=True)
LTX = Family("ltx", 8, 32, -1, 3.0, image_class="LTXImageToVideoPipeline", tested=True)

FAMILIES: dict[str, Family] = {
    "WanPipeline": WAN,
    "WanImageToVideoPipeline": Family("wan", 4, 16, 1, 5.0, takes_image=True, tested=True),
    "LTXPipeline": LTX,
    "LTXImageToVideoPipeline": Family("ltx", 8, 32, -1, 3.0, takes_image=True, tested=True),
    # Untested: the rules come from the pipelines' own checks (frames 4k+1 / sizes 16 for
    # HunyuanVideo; CogVideoX 1.5 wants 8k+1 frames and sizes multiple of 16).
    "HunyuanVideoPipeline": Family("hunyuan", 4, 16, 1, 6.0),
    "CogVideoXPipeline": Family(
        "cogvideox", 4, 16, 2, 6.0, image_class="CogVideoXImageToVideoPipeline"
    ),
    "CogVideoXImageToVideoPipeline": Family("cogvideox", 4, 16, 2, 6.0, takes_image=True),
}


def family_of(pipeline_class: str) -> Family | None:
    """The rules of ``pipeline_class``, or ``None`` for a class luma_ray does not know."""
    return FAMILIES.get(pipeline_class)
