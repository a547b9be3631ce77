"""Workload traces for ``luma-ray simulate``: a launch day, a real replay, a family of days.

Each generator writes ``DIR/trace.csv`` (``arrival_s,tenant,tier,model,service_s``, sorted by
arrival) and ``DIR/capacity.csv`` (``time_s,slots``, a step function) and returns a
:class:`TraceSummary`. The CLI calls them; docs/traces.md describes both traces and their knobs.
Pure Python and numpy: no Ray, no clock reads, randomness from a seeded generator.
"""

from luma_ray.sim.traces.gentd26 import write_gentd26
from luma_ray.sim.traces.launch_day import write_launch_day
from luma_ray.sim.traces.scenarios import write_scenarios
from luma_ray.sim.traces.writer import TIER_SHARES, TIERS, TraceSummary

__all__ = [
    "TIERS",
    "TIER_SHARES",
    "TraceSummary",
    "write_gentd26",
    "write_launch_day",
    "write_scenarios",
]
