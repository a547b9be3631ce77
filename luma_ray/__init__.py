"""luma_ray: serve large text-to-video models to many users at once, on Ray.

The package is split by domain, one job per package, imports pointing down only
(docs/architecture.md draws the layers; ``.importlinter`` checks them): ``jobs`` (the job
record, its state machine and the generation request), ``scheduler`` (queues, policies, leases,
the journal and the service; pure), ``sim`` (simulators and traces; pure), ``wire`` (how a
generation looks outside; pure), ``notify`` (webhooks), ``runtime`` (the scheduler's Ray actor
and its handles), ``workers``, ``api``, ``client``. Importing the package has no side effects
and imports neither Ray nor torch.
"""

__version__ = "0.1.0"


def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Connect to (or start) a luma_ray system; see :func:`luma_ray.client.connect`."""
    from luma_ray.client.ray_client import connect as _connect

    return _connect(*args, **kwargs)
