"""Wire forms: how the scheduler's answers look outside the system.

Pure values and functions (no I/O, no web framework), below ``luma_ray.notify`` and above
``luma_ray.models`` in the layers, so that the native API (``luma_ray.api``) and the webhooks
the scheduler's actor sends render a generation the same way. Import what you need from its
modules; this file re-exports nothing.
"""
