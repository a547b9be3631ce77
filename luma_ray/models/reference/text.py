"""Prompt → token ids for the reference model, with no tokenizer to download.

A prompt of the grammar (grammar.py) is first rewritten to its four slots in a fixed order,
``<colour> <shape> <motion> <background>`` ("a red circle moving right on a blue background" and
"A red circle, going right, on blue" both become "red circle right blue"), so a word's position
says its role and the trained model binds colours to the object or the background reliably.
Other prompts keep their words. Words are lower-cased, split on non-word characters, and
hashed (BLAKE2b, so the ids are the same in every process and on every machine, unlike
``hash()``) into a fixed vocabulary. Id 0 is the null token: an empty prompt (the usual
negative prompt) is ``[0]``, so the unconditional branch of classifier-free guidance still has
one token to attend to. Padding also uses id 0 but is masked out. Called by
``LumaTiny.generate`` once per request.
"""

from __future__ import annotations

import hashlib
import re

import torch

from luma_ray.models.reference.grammar import parse

NULL_TOKEN = 0
_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(prompt: str, vocab_size: int, max_tokens: int) -> list[int]:
    """Hashed token ids of the first ``max_tokens`` words of ``prompt`` (``[0]`` if it has none).

    Ids lie in ``[1, vocab_size)``; collisions between words are possible and harmless for a
    model whose weights are not trained.
    """
    scene = parse(prompt)
    words = (
        [scene.colour, scene.shape, scene.motion, scene.background]
        if scene is not None
        else _WORD.findall(prompt.lower())
    )
    ids = [_word_id(word, vocab_size) for word in words[:max_tokens]]
    return ids or [NULL_TOKEN]


def token_batch(
    prompts: list[str], vocab_size: int, max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids ``[B, L]`` (int64, zero-padded) and a mask ``[B, L]`` (bool, True = real token).

    ``L`` is the longest prompt's token count in the batch, at most ``max_tokens``.
    """
    rows = [tokenize(prompt, vocab_size, max_tokens) for prompt in prompts]
    length = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


def _word_id(word: str, vocab_size: int) -> int:
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % (vocab_size - 1)
