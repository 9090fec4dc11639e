"""Tokenizer loading and the actor/critic vocabulary check.

Critics never see text: they read the actor's token ids. So the only thing actor and critic must
agree on is the id -> token mapping (the vocabulary, added tokens included); merges or normalisers
may differ without harm. :func:`check_same_tokenizer` checks exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from asyppo.models.loading import quiet_transformers


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load the HF tokenizer saved in ``path``; ensure it has a pad token.

    Batched generation and padded micro-batches need a pad id. When the tokenizer defines none,
    the EOS token is used (the usual choice for base models; padding is always masked out).

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        ValueError: the tokenizer has neither a pad nor an EOS token.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer: directory {path} does not exist")
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {path}: defines neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, model_dir: str | Path) -> list[int]:
    """The ids that end a response: the tokenizer's EOS and every ``eos_token_id`` of the model's
    ``generation_config.json`` (chat models list several, e.g. an end-of-turn token beside the
    end-of-text one), in that order, without repeats."""
    ids = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    path = Path(model_dir) / "generation_config.json"
    if path.is_file():
        listed = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
        for token in listed if isinstance(listed, list) else [] if listed is None else [listed]:
            if int(token) not in ids:
                ids.append(int(token))
    if not ids:
        raise ValueError(f"{model_dir}: neither the tokenizer nor generation_config.json names an EOS token")
    return ids


def check_same_tokenizer(
    actor_tokenizer: PreTrainedTokenizerBase,
    critic_tokenizer: PreTrainedTokenizerBase,
    *,
    critic_name: str = "critic",
) -> None:
    """Raise ``ValueError`` unless both tokenizers map every token id to the same token.

    The message says how they differ: the vocabulary sizes, and the first token id whose token
    differs (or exists in only one of them).
    """
    actor_vocab = {i: t for t, i in actor_tokenizer.get_vocab().items()}
    critic_vocab = {i: t for t, i in critic_tokenizer.get_vocab().items()}
    if actor_vocab == critic_vocab:
        return
    first = min(
        i
        for i in actor_vocab.keys() | critic_vocab.keys()
        if actor_vocab.get(i) != critic_vocab.get(i)
    )
    raise ValueError(
        f"{critic_name} tokenizer differs from the actor's: vocabulary sizes {len(actor_vocab)} (actor) vs "
        f"{len(critic_vocab)} ({critic_name}); first differing token id {first}: "
        f"{actor_vocab.get(first, '<absent>')!r} (actor) vs {critic_vocab.get(first, '<absent>')!r} "
        f"({critic_name}). Critics read the actor's token ids, so they must share its vocabulary: "
        "use a critic checkpoint of the same model family."
    )
