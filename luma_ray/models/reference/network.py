"""The luma-tiny network: a small text-conditioned spatio-temporal diffusion transformer.

It works directly on pixels (no VAE, nothing to download). A video ``[B, F, 3, H, W]`` is cut into
8x8 patches, so the token sequence is frames x patches (16 x 64 = 1,024 tokens at 16x64x64).
Each block runs, with adaLN modulation from the timestep and the pooled prompt:

1. spatial self-attention among the patches of one frame,
2. temporal self-attention among the frames at one patch position,
3. cross-attention from every token to the prompt's tokens,
4. an MLP.

A final adaLN layer maps tokens back to 8x8 patches of ``head_channels`` features, which are
unpatchified and turned into a 3-channel prediction of the clean frames by a small conv head.
``LumaTiny`` (model.py) builds it from ``NetworkConfig``, loads its weights, and runs the
sampler around it.

Sequence parallelism: tokens are frame-major, so a rank holds whole frames
(``local_token_slice``); spatial attention, cross-attention, the MLP and the conv head need
only local tokens. Temporal attention attends over every frame: each rank gathers the
(normalised, modulated) tokens of all frames once per block (``gather_frames``) and computes
keys and values from them, queries from its own frames, so the result is the same attention
over the whole sequence as on one rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

FRAME_TIME_SPAN = 7.0
"""The time coordinate of a clip's last frame (its first is 0) in networks with
``frame_channels``: what 8 frames numbered 0..7 have."""

FrameGather = Callable[[torch.Tensor], torch.Tensor]
"""``[B, F_local, ...]`` on each rank → ``[B, F_total, ...]``, frames in rank order."""


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the network; stored in a checkpoint's ``config.json`` next to the weights."""

    dim: int = 128  # token width
    depth: int = 4  # transformer blocks
    heads: int = 4  # attention heads (dim / heads per head)
    patch: int = 8  # pixels per patch side; heights and widths are multiples of it
    channels: int = 3  # RGB
    head_channels: int = 16  # features per pixel fed to the conv head
    mlp_ratio: int = 4
    vocab_size: int = 4096  # hashed word vocabulary, id 0 = null token
    max_text_tokens: int = 32
    given_frames: int = 0  # 1: takes a per-frame flag marking frames given clean (image inputs)
    frame_channels: int = 0  # >0: the frame's time gets its own channels (see _positions)
    scale_input: int = 0  # 1: noisy frames are scaled by their signal's share (see forward)
    frame_condition: int = 0  # 1: the adaLN condition is per frame (the frame's time added)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NetworkConfig:
        """Build from ``config.json``; unknown keys are an error so a wrong file fails loudly."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown network settings {unknown}; known: {sorted(names)}")
        return cls(**{k: int(v) for k, v in data.items()})  # type: ignore[call-overload]


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, else cross-attention."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        ctx = x if context is None else context
        b, n, d = x.shape
        head_dim = d // self.heads
        q = self.q(x).view(b, n, self.heads, head_dim).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out: torch.Tensor = self.out(y.transpose(1, 2).reshape(b, n, d))
        return out


def _mlp(dim: int, ratio: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


def _over_tokens(mod: torch.Tensor) -> torch.Tensor:
    """A modulation ``[B, X]`` (per sample) or ``[B, F, X]`` (per frame) shaped to broadcast over
    tokens ``[B, F, N, D]``."""
    return mod[:, :, None, :] if mod.dim() == 3 else mod[:, None, None, :]


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Block(nn.Module):
    """Factorised spatio-temporal block on tokens ``[B, F, N, D]`` (N patches per frame)."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.norm_s, self.spatial = _norm(d), Attention(d, cfg.heads)
        self.norm_t, self.temporal = _norm(d), Attention(d, cfg.heads)
        self.norm_x, self.cross = nn.LayerNorm(d, eps=1e-6), Attention(d, cfg.heads)
        self.norm_m, self.mlp = _norm(d), _mlp(d, cfg.mlp_ratio)
        self.ada = nn.Linear(d, 9 * d)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        gather_frames: FrameGather | None = None,
    ) -> torch.Tensor:
        b, f, n, d = x.shape
        ada: torch.Tensor = self.ada(F.silu(c))
        mods = _over_tokens(ada).chunk(9, dim=-1)
        s_shift, s_scale, s_gate, t_shift, t_scale, t_gate, m_shift, m_scale, m_gate = mods
        h = _modulate(self.norm_s(x), s_shift, s_scale).reshape(b * f, n, d)
        x = x + s_gate * self.spatial(h).view(b, f, n, d)
        local = _modulate(self.norm_t(x), t_shift, t_scale)
        h = local.transpose(1, 2).reshape(b * n, f, d)
        context = None
        if gather_frames is not None:  # queries from our frames, keys/values from all frames
            every = gather_frames(local)
            context = every.transpose(1, 2).reshape(b * n, every.shape[1], d)
        x = x + t_gate * self.temporal(h, context).view(b, n, f, d).transpose(1, 2)
        h = self.norm_x(x).reshape(b, f * n, d)
        x = x + self.cross(h, text, text_mask[:, None, None, :]).view(b, f, n, d)
        mlp: torch.Tensor = self.mlp(_modulate(self.norm_m(x), m_shift, m_scale))
        return x + m_gate * mlp


class TextEncoder(nn.Module):
    """Hashed-token embeddings, learned positions and one transformer layer over the prompt."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.position = nn.Parameter(torch.zeros(cfg.max_text_tokens, cfg.dim))
        self.norm_a, self.attn = nn.LayerNorm(cfg.dim), Attention(cfg.dim, cfg.heads)
        self.norm_m, self.mlp = nn.LayerNorm(cfg.dim), _mlp(cfg.dim, cfg.mlp_ratio)
        self.norm_out = nn.LayerNorm(cfg.dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, L, D]`` and their masked mean ``[B, D]`` for ids and mask ``[B, L]``."""
        x = self.token(ids) + self.position[: ids.shape[1]]
        x = x + self.attn(self.norm_a(x), mask=mask[:, None, None, :])
        x = self.norm_out(x + self.mlp(self.norm_m(x)))
        weights = mask.to(x.dtype)[..., None]
        return x, (x * weights).sum(1) / weights.sum(1)


def sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``[..., dim]`` of float positions (timesteps or token coordinates)."""
    steps = torch.arange(dim // 2, dtype=torch.float32, device=positions.device)
    freqs = torch.exp(-math.log(10000.0) * steps / (dim // 2))
    angles = positions.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class LumaTinyNet(nn.Module):
    """Predicts the clean frames x0 from noisy frames, the timestep and the prompt."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.patch
        self.patch_embed = nn.Linear(cfg.channels * p * p, d)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.text = TextEncoder(cfg)
        self.text_to_cond = nn.Linear(d, d)
        if cfg.frame_condition:
            self.frame_to_cond = nn.Linear(d, d)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final_norm, self.final_ada = _norm(d), nn.Linear(d, 2 * d)
        self.final = nn.Linear(d, p * p * cfg.head_channels)
        hc = cfg.head_channels
        self.head = nn.Sequential(
            nn.Conv2d(hc, hc, 3, padding=1), nn.SiLU(), nn.Conv2d(hc, cfg.channels, 3, padding=1)
        )
        if cfg.given_frames:
            self.given = nn.Parameter(torch.zeros(d))

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        pooled: torch.Tensor,
        first_frame: int = 0,
        gather_frames: FrameGather | None = None,
        given: torch.Tensor | None = None,
        total_frames: int | None = None,
    ) -> torch.Tensor:
        """Clean frames ``[B, F, C, H, W]`` predicted from ``x`` at times ``t`` ``[B]`` in [0, 1].

        ``text``, ``text_mask`` and ``pooled`` come from ``self.text`` (computed once per request
        by the sampler, not once per step). Under sequence parallelism ``x`` holds this rank's
        frames, starting at frame ``first_frame``, and ``gather_frames`` collects a tensor's
        frames from every rank in order (see ``Block``). ``given`` ``[B, F]`` (1 or 0, for a
        network built with ``given_frames``) marks the frames of ``x`` that are clean inputs
        rather than noisy (an image to start or end on); their tokens get a learned offset.
        ``total_frames``: the whole video's frame count (default: ``first_frame`` + ``F``).
        With ``scale_input`` each noisy frame is multiplied by ``(1-t) / sqrt((1-t)² + t²)``,
        its signal's share of the latent's scale (0 at t = 1, 1 at t = 0; given frames keep
        theirs), so at high noise the tokens are the positions and the prompt alone, and the
        network learns the layout from the prompt instead of first learning to ignore noise.
        """
        b, f, _, height, width = x.shape
        p = self.cfg.patch
        if self.cfg.scale_input:  # at t = 1 the latent is pure noise: nothing to read
            noisy = t.to(x.dtype)[:, None].expand(b, f)
            if given is not None:
                noisy = noisy * (1 - given.to(x.dtype))
            keep = (1 - noisy) / torch.sqrt((1 - noisy) ** 2 + noisy**2)
            x = x * keep[:, :, None, None, None]
        total = first_frame + f if total_frames is None else total_frames
        positions = self._positions(first_frame, f, total, height // p, width // p)
        h = self.patch_embed(_patchify(x, p)) + positions
        if given is not None and self.cfg.given_frames:
            h = h + given.to(h.dtype)[:, :, None, None] * self.given
        c = self.time(sincos(t * 1000.0, self.cfg.dim)) + self.text_to_cond(pooled)
        if self.cfg.frame_condition:  # one condition per frame: [B, F, D]
            c = c[:, None, :] + self.frame_to_cond(
                sincos(self._frame_times(first_frame, f, total).to(c.device), self.cfg.dim)
            )
        for block in self.blocks:
            h = block(h, c, text, text_mask, gather_frames)
        shift, scale = _over_tokens(self.final_ada(F.silu(c))).chunk(2, dim=-1)
        h = self.final(_modulate(self.final_norm(h), shift, scale))
        features = _unpatchify(h, p, height // p, width // p)
        x0: torch.Tensor = self.head(features)
        return x0.view(b, f, self.cfg.channels, height, width)

    def _frame_times(self, first: int, count: int, total: int) -> torch.Tensor:
        """Times in the clip of frames ``first..first+count`` of ``total``: the last frame of
        any clip is at ``FRAME_TIME_SPAN``. On the CPU, like the rest of the positions."""
        step = FRAME_TIME_SPAN / max(total - 1, 1)
        return torch.arange(first, first + count, dtype=torch.float32) * step

    def _positions(self, first: int, count: int, total: int, rows: int, cols: int) -> torch.Tensor:
        """Fixed embeddings ``[count, N, D]`` of frames ``first..first+count`` of ``total``.

        Fixed rather than learned, so any size up to the model's limits works without resizing.
        With ``frame_channels`` q: 2-D sin-cos of the patch in ``D - q`` channels and, in the
        other q, sin-cos of the frame's time in the clip, scaled so that a clip of any length
        spans ``FRAME_TIME_SPAN`` (a network trained on 8 frames draws the same motion, sampled
        more finely, over 16). Without: the frame's index added onto the patch's channels (the
        layout of older checkpoints; the two are hard for a network to tell apart).
        """
        d, q = self.cfg.dim, self.cfg.frame_channels
        device = self.patch_embed.weight.device
        ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        if not q:
            space = torch.cat([sincos(ys.flatten(), d // 2), sincos(xs.flatten(), d // 2)], dim=-1)
            time = sincos(torch.arange(first + count), d)[first:]
            return (space[None, :, :] + time[:, None, :]).to(device)
        half = (d - q) // 2
        space = torch.cat([sincos(ys.flatten(), half), sincos(xs.flatten(), d - q - half)], dim=-1)
        time = sincos(self._frame_times(first, count, total), q)
        n = rows * cols
        both = torch.cat(
            [space[None].expand(count, n, d - q), time[:, None].expand(count, n, q)], -1
        )
        return both.to(device)


def _patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, F, C, H, W]`` → ``[B, F, N, C*p*p]``, patches in row-major order."""
    b, f, c, h, w = x.shape
    x = x.reshape(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, f, (h // p) * (w // p), c * p * p)


def _unpatchify(h: torch.Tensor, p: int, rows: int, cols: int) -> torch.Tensor:
    """``[B, F, N, C*p*p]`` → ``[B*F, C, rows*p, cols*p]``, the inverse of ``_patchify``.

    The result is laid out channels-last in memory, which the CPU convolution of the head runs
    about three times faster on.
    """
    b, f, _, width = h.shape
    c = width // (p * p)
    h = h.reshape(b, f, rows, cols, c, p, p).permute(0, 1, 2, 5, 3, 6, 4)
    return h.reshape(b * f, rows * p, cols * p, c).permute(0, 3, 1, 2)


def init_weights(net: nn.Module, seed: int) -> None:
    """Fill ``net`` with deterministic random weights from ``seed`` (global RNG untouched).

    Called by ``make_checkpoint``. Linear and conv weights are N(0, 1/fan_in); adaLN
    projections are scaled down so modulation starts near identity without being zero (a
    zero-initialised adaLN, as in DiT training, would make an untrained model ignore the prompt).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                fan_in = module.weight[0].numel()
                gain = 0.25 if name.endswith("ada") else 1.0
                module.weight.normal_(0.0, gain / math.sqrt(fan_in), generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 1.0, generator=gen)
            elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, TextEncoder):
                module.position.normal_(0.0, 0.1, generator=gen)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def local_token_slice(rank: int, world: int, frames: int, patches_per_frame: int) -> slice:
    """The tokens rank ``rank`` of ``world`` would own under sequence parallelism.

    Tokens are frame-major (``frame * patches_per_frame + patch``); ranks get whole, contiguous
    frames, as evenly as possible (the first ``frames % world`` ranks get one more), so spatial
    attention stays local. Ranks beyond ``frames`` get an empty slice.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    base, extra = divmod(frames, world)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return slice(start * patches_per_frame, stop * patches_per_frame)
