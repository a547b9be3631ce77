"""``luma-ray models scaffold``: a tiny, randomly initialised diffusers pipeline as a version
folder (``model.yaml`` + ``checkpoints/pipeline/``), built from config in code, no download.

The components follow the shapes of diffusers' own fast tests (a few thousand parameters
each); the tokenizer is a character-level ``tokenizers`` model (printable ASCII, ``</s>``
appended) wrapped in ``PreTrainedTokenizerFast``. Weights come from ``torch.manual_seed(seed)``
under a fork of the RNG, so the caller's global RNG is untouched. The folder publishes,
promotes and serves like a real one; only its videos are noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from luma_ray.errors import InvalidRequest

ENTRYPOINT = "luma_ray.models.diffusers:DiffusersVideoModel"

TINY_LIMITS: dict[str, dict[str, Any]] = {
    "WanPipeline": {
        "max_frames": 33,
        "max_height": 128,
        "max_width": 128,
        "max_steps": 50,
        "default_steps": 4,
        "default_fps": 16,
        "size_multiple": 16,
        "default_frames": 9,
        "frame_step": 4,
        "inputs": ["first_frame", "extend_video"],
    },
    "LTXPipeline": {
        "max_frames": 33,
        "max_height": 128,
        "max_width": 128,
        "max_steps": 50,
        "default_steps": 4,
        "default_fps": 24,
        "size_multiple": 32,
        "default_frames": 9,
        "frame_step": 8,
        "inputs": ["first_frame", "extend_video"],
    },
}
IMAGE_CLASSES = {"WanPipeline": "WanImageToVideoPipeline", "LTXPipeline": "LTXImageToVideoPipeline"}
SCAFFOLDS = tuple(TINY_LIMITS)


def write_tiny_folder(folder: Path, pipeline_class: str, seed: int = 0) -> Path:
    """Write ``folder/model.yaml`` and ``folder/checkpoints/pipeline/``; return ``folder``.

    ``InvalidRequest`` naming the supported classes for any other ``pipeline_class``.
    """
    if pipeline_class not in TINY_LIMITS:
        raise InvalidRequest(
            f"no tiny scaffold for {pipeline_class!r}; use one of {', '.join(SCAFFOLDS)}"
        )
    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _tiny_wan() if pipeline_class == "WanPipeline" else _tiny_ltx()
    pipe.save_pretrained(str(folder / "checkpoints" / "pipeline"))
    doc = {
        "entrypoint": ENTRYPOINT,
        "params": {
            "name": f"tiny-{pipeline_class.removesuffix('Pipeline').lower()}",
            "pipeline": "pipeline",
            "pipeline_class": pipeline_class,
            "image_pipeline_class": IMAGE_CLASSES[pipeline_class],
            "dtype": "auto",
            "max_sequence_length": 32,
        },
        "limits": TINY_LIMITS[pipeline_class],
        "metadata": {"source": f"luma-ray models scaffold --pipeline {pipeline_class} --tiny"},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return folder


def tiny_tokenizer() -> Any:
    """A character-level tokenizer (printable ASCII; ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2)."""
    import transformers
    from tokenizers import Tokenizer, models, processors

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for code in range(32, 127):
        vocab[chr(code)] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast: Any = transformers.PreTrainedTokenizerFast
    return fast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _t5_config(vocab_size: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 1,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }


def _tiny_wan() -> Any:
    """Wan 2.2 TI2V layout: one transformer for text- and image-to-video
    (``expand_timesteps``), a UniPC multistep scheduler with flow sigmas as Wan ships."""
    import diffusers
    import transformers

    d: Any = diffusers
    t: Any = transformers

    tokenizer = tiny_tokenizer()
    text_encoder = t.UMT5EncoderModel(t.UMT5Config(**_t5_config(len(tokenizer))))
    vae = d.AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = d.WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    scheduler = d.UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    return d.WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        expand_timesteps=True,
    )


def _tiny_ltx() -> Any:
    """LTX-Video layout: 8x spatial and temporal VAE compression (patch size 1), Euler flow
    matching; the same components serve ``LTXImageToVideoPipeline``."""
    import diffusers
    import transformers

    d: Any = diffusers
    t: Any = transformers

    tokenizer = tiny_tokenizer()
    text_encoder = t.T5EncoderModel(t.T5Config(**_t5_config(len(tokenizer))))
    transformer = d.LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = d.AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    return d.LTXPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=d.FlowMatchEulerDiscreteScheduler(),
    )
