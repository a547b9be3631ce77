"""Configuration, loaded once at an entry point and passed down as values: the scheduler's
(``scheduling``: tiers, policy, tenant and cluster limits) and the deployment's (``serving``:
pools, autoscaling, ingress limits, webhooks, where state lives). A bad file raises
:class:`~luma_ray.errors.ConfigError` whose one-line message names the field and the fix.
"""

from luma_ray.config.dream_machine import DreamMachineConfig, DreamModel
from luma_ray.config.scheduling import (
    DEFAULT_MAX_QUEUED,
    OTHER_TIER_MAX_QUEUED,
    ClusterConfig,
    PolicyConfig,
    PreemptionConfig,
    SchedulerConfig,
    TenantLimits,
    TierConfig,
    default_tiers,
    load_config,
    load_tiers,
    parse_config,
)
from luma_ray.config.serving import (
    STANDARD_RETRY_SCHEDULE_S,
    AutoscalingConfig,
    IngressLimits,
    PoolConfig,
    RuntimeConfig,
    WebhookConfig,
    default_data_dir,
    load_pools,
)

__all__ = [
    "AutoscalingConfig",
    "ClusterConfig",
    "DEFAULT_MAX_QUEUED",
    "DreamMachineConfig",
    "DreamModel",
    "IngressLimits",
    "OTHER_TIER_MAX_QUEUED",
    "PolicyConfig",
    "PoolConfig",
    "PreemptionConfig",
    "RuntimeConfig",
    "STANDARD_RETRY_SCHEDULE_S",
    "SchedulerConfig",
    "TenantLimits",
    "TierConfig",
    "WebhookConfig",
    "default_data_dir",
    "default_tiers",
    "load_config",
    "load_pools",
    "load_tiers",
    "parse_config",
]
