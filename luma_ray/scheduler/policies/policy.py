"""The policy base class: parameters by name with defaults, bands, rank, and the hooks a
stateful policy updates through (the package's docstring states the contract)."""

from __future__ import annotations

from collections.abc import Mapping

from luma_ray.errors import ConfigError
from luma_ray.scheduler.tiers import TierSpec


class Policy:
    """Base class. Subclasses set ``name`` and ``param_defaults`` and override ``rank``."""

    name = "policy"
    param_defaults: Mapping[str, float] = {}

    def __init__(self, **params: float) -> None:
        unknown = sorted(set(params) - set(self.param_defaults))
        if unknown:
            known = ", ".join(sorted(self.param_defaults)) or "none"
            raise ConfigError(
                f"policy {self.name}: unknown parameter(s) {', '.join(unknown)}; known: {known}"
            )
        self.params = {**self.param_defaults, **{k: float(v) for k, v in params.items()}}

    def bands(self, tier: TierSpec) -> tuple[float, ...]:
        """Ascending wait thresholds (s) at which the rank may jump. One band by default."""
        return ()

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        raise NotImplementedError

    def on_arrival(self, tier: TierSpec, now_s: float) -> None:
        """Called once for each new job the scheduler accepts (not for requeues)."""

    def on_dispatch(self, tier: TierSpec, band: int, wait_s: float, now_s: float) -> None:
        """Called once after each dispatch at ``now_s``; stateful policies update here."""


def check_param(policy: str, name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"policy {policy}: {name} must be in [{lo:g}, {hi:g}], got {value}")
