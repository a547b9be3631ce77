"""Video models: the interface workers call, the built-in registry, and video encoding.

``interface`` (requests, limits, the ``VideoModel`` protocol, ``validate_request``) and
``registry`` are light and imported here; they pull in neither torch nor PyAV. The reference
model (``luma_ray.models.reference``, torch) and ``luma_ray.models.encode`` (PyAV) are imported
only by the workers that need them. See docs/models.md.
"""

from luma_ray.models.interface import (
    PARK,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ModelLimits,
    ParkedStateInvalid,
    StepCallback,
    VideoModel,
    validate_request,
)
from luma_ray.models.registry import MODELS, get_model_class, import_entrypoint

__all__ = [
    "MODELS",
    "PARK",
    "GenerationCancelled",
    "GenerationParked",
    "GenerationRequest",
    "ModelLimits",
    "ParkedStateInvalid",
    "StepCallback",
    "VideoModel",
    "get_model_class",
    "import_entrypoint",
    "validate_request",
]
