"""Webhooks: signed ``POST`` requests to a generation's ``callback_url`` as its state changes.

The scheduler's Ray actor owns the sender and the HTTP layer checks callback URLs with the same
rules, so this package sits below both ``luma_ray.api`` and the Ray shell: it imports only
:mod:`luma_ray.config`, :mod:`luma_ray.errors`, :mod:`luma_ray.storage.sqlite`, the standard
library, httpx and its httpcore (``transport.py``), and never Ray. Import what you need from
its modules; this file re-exports nothing.
"""
