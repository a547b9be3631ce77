"""Simulators of the scheduler, and the traces they replay. Pure: no Ray, torch, boto3 or FastAPI.

``simulate`` replays a trace on one pool through a dispatch policy (``luma-ray simulate``);
``dispatch_sim`` replays it on several clusters pulling from the real scheduler core, to measure
dispatch limits; ``traces`` writes and reads the trace and capacity CSVs. Imports point down:
this package uses ``luma_ray.scheduler``, ``luma_ray.jobs`` and ``luma_ray.config``, never the
reverse.
"""
