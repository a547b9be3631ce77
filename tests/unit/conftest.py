"""Unit tests run without Ray: any attempt to start or join a cluster fails the test."""

from tests.no_ray import _no_ray  # noqa: F401  (autouse fixture)
