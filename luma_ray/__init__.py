"""luma_ray: serve large text-to-video models to many users at once, on Ray.

The package is split by domain (see DESIGN.md §7): ``jobs`` (the job record and its state
machine), ``scheduler`` (queues, policies, leases and limits, pure), ``sim`` (the simulators
and, in ``sim.traces``, the workload generators; pure), ``config`` and ``errors``. Importing the
package has no side effects and imports neither Ray nor torch.
"""

__version__ = "0.1.0"


def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Connect to (or start) a luma_ray system; see :func:`luma_ray.client.connect`."""
    from luma_ray.client import connect as _connect

    return _connect(*args, **kwargs)
