"""The toy task's tokenizer, built in code with `tokenizers` (no download).

Character level over printable ASCII plus one merged token for ``\\boxed`` so that an answer
``\\boxed{46}`` costs five tokens. Special tokens: ``<pad>`` (0), ``<bos>`` (1), ``<eos>`` (2),
``<unk>`` (3). Like Qwen's tokenizers, no BOS is prepended (``tokenizer(text)`` equals
``tokenizer(text, add_special_tokens=False)``), so prompts encode the same whichever way a caller
asks. There is no chat template: prompts are rendered by ``asyppo.data.render_prompt``'s plain
fallback.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
BOXED = "\\boxed"
# Tab, carriage return, vertical tab and form feed are left out on purpose: they map to <unk>.
CHARACTERS = tuple(c for c in string.printable if c not in "\t\r\x0b\x0c")


def build_toy_tokenizer() -> PreTrainedTokenizerBase:
    """Return the toy HF fast tokenizer (vocabulary of 4 specials + ``\\boxed`` + 96 characters)."""
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, BOXED, *CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # One piece per character, except the literal "\boxed" which stays whole.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\\boxed|[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )
