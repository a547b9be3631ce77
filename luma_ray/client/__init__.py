"""Python clients: the Ray-native client (``connect``); the HTTP client comes with the API."""

from luma_ray.client.ray_client import Client, connect

__all__ = ["Client", "connect"]
