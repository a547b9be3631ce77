"""Diffusers video pipelines (Wan 2.x, LTX-Video) as luma_ray model versions.

``entrypoint: luma_ray.models.diffusers:DiffusersVideoModel`` in a version's model.yaml;
``luma-ray models scaffold`` writes a tiny one (``scaffold.py``). Needs the ``diffusers``
extra (``pip install 'luma_ray[diffusers]'``). See docs/models.md, "Serving a diffusers
pipeline".
"""

from luma_ray.models.diffusers.model import DiffusersVideoModel

__all__ = ["DiffusersVideoModel"]
