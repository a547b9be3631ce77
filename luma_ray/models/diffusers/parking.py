"""Parking a diffusers pipeline at a step boundary and resuming it bit for bit.

A diffusers pipeline owns its denoising loop, so a resumed run cannot start at step ``k``.
It is fast-forwarded instead (:class:`FastForward`): the pipeline runs from the start as
usual (prompt encoding, image encoding, initial noise, timesteps: all deterministic), but for
steps ``1..k`` the transformer's ``forward`` is replaced by a stub that returns zeros of the
right shape, so those steps cost nothing. In the callback of step ``k`` the real forward comes
back and everything the first ``k`` steps produced is put back from the parked state:

- the latents after step ``k`` (returned from the callback, as ``callback_on_step_end``
  allows);
- the scheduler's state: every tensor, number and list of them in its ``__dict__`` (a
  multistep scheduler such as UniPC keeps its last model outputs, ``timestep_list``,
  ``lower_order_nums``, ``last_sample``, ``_step_index``: all restored);
- the ``torch.Generator``'s state (a stochastic sampler or an LTX decoder that adds noise
  draws from it after the loop).

Steps ``k + 1`` onwards then run exactly as in an unparked run. The state is ``torch.save``
bytes read back with ``weights_only=True`` (plain tensors and containers only).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch

from luma_ray.models.interface import ParkedStateInvalid

PARKED_FORMAT = "luma-ray/diffusers/parked/1"
_PLAIN = (bool, int, float, str, type(None))


def scheduler_state(scheduler: object) -> dict[str, Any]:
    """The scheduler's mutable state: attributes that are tensors, plain values, or lists and
    tuples of them (its config is rebuilt by ``set_timesteps`` and not saved)."""
    state: dict[str, Any] = {}
    for key, value in vars(scheduler).items():
        if key.startswith("__") or key == "_internal_dict":
            continue
        copied = _copy_plain(value)
        if copied is not _SKIP:
            state[key] = copied
    return state


def restore_scheduler(scheduler: object, state: dict[str, Any], device: torch.device) -> None:
    """Put ``state`` (from :func:`scheduler_state`) back; tensors go to the device the
    attribute's current tensor is on, else ``device``."""
    for key, value in state.items():
        current = getattr(scheduler, key, None)
        where = current.device if isinstance(current, torch.Tensor) else device
        setattr(scheduler, key, _to_device(value, where))


def pack_state(
    *,
    step: int,
    fingerprint: str,
    latents: torch.Tensor,
    scheduler: dict[str, Any],
    generator: torch.Generator,
) -> bytes:
    """The parked state as bytes (``torch.save`` of plain tensors and containers)."""
    doc = {
        "format": PARKED_FORMAT,
        "step": step,
        "fingerprint": fingerprint,
        "latents": latents.detach().to("cpu").clone(),
        "scheduler": scheduler,
        "generator": generator.get_state(),
    }
    buffer = io.BytesIO()
    torch.save(doc, buffer)
    return buffer.getvalue()


def unpack_state(state: bytes, fingerprint: str, steps: int) -> dict[str, Any]:
    """The parked document, checked to be ours, of this request, at a step in ``1..steps``."""
    try:
        doc = torch.load(io.BytesIO(bytes(state)), map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged blob: any unpickling error
        raise ParkedStateInvalid(f"not a {PARKED_FORMAT} state: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != PARKED_FORMAT:
        raise ParkedStateInvalid(f"not a {PARKED_FORMAT} state")
    if doc.get("fingerprint") != fingerprint:
        raise ParkedStateInvalid("the parked state belongs to another request or version")
    step = doc.get("step")
    if not isinstance(step, int) or not 0 < step <= steps:
        raise ParkedStateInvalid(f"parked step {step} is not within 1..{steps}")
    if not isinstance(doc.get("latents"), torch.Tensor) or not isinstance(
        doc.get("scheduler"), dict
    ):
        raise ParkedStateInvalid("the parked state has no latents or scheduler state")
    return doc


class FastForward:
    """Stubs the transformers' ``forward`` until :meth:`stop` (see the module docstring).

    ``channel_dim`` is where the output keeps its channels (1 for ``[B, C, F, H, W]``, -1
    for LTX's packed ``[B, S, C]``); the output has ``out_channels`` there and the input's
    sizes elsewhere. Use as a context manager: the real forwards always come back.
    """

    def __init__(self, transformers: list[torch.nn.Module], channel_dim: int) -> None:
        self._modules = transformers
        self._channel_dim = channel_dim
        self._saved: list[tuple[torch.nn.Module, Any]] = []

    def __enter__(self) -> FastForward:
        for module in self._modules:
            had = "forward" in vars(module)  # an accelerate offload hook sets its own
            self._saved.append((module, vars(module)["forward"] if had else None))
            module.forward = self._stub(module)
        return self

    def stop(self) -> None:
        """Give every transformer its real forward back (idempotent)."""
        while self._saved:
            module, forward = self._saved.pop()
            if forward is None:
                del module.forward
            else:
                module.forward = forward

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stub(self, module: torch.nn.Module) -> Callable[..., Any]:
        config: Any = module.config
        out_channels = getattr(config, "out_channels", None) or config.in_channels
        dim = self._channel_dim

        def forward(*args: Any, **kwargs: Any) -> Any:
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            if not isinstance(hidden, torch.Tensor):
                raise TypeError("fast-forward stub: the transformer got no hidden_states")
            shape = list(hidden.shape)
            shape[dim] = int(out_channels)
            zeros = hidden.new_zeros(shape)
            if kwargs.get("return_dict", True):
                from diffusers.models.modeling_outputs import Transformer2DModelOutput

                return Transformer2DModelOutput(sample=zeros)
            return (zeros,)

        return forward


class _Skip:
    pass


_SKIP = _Skip()


def _copy_plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple):
        items = [_copy_plain(v) for v in value]
        if any(item is _SKIP for item in items):
            return _SKIP
        return items if isinstance(value, list) else tuple(items)
    return _SKIP


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    return value
