"""``gguf:`` model paths: a GGUF file becomes a cached HF directory the trainer runs on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from asyppo.config import load_train_config
from asyppo.models.gguf import resolve_gguf
from asyppo.trainer import Trainer
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf = pytest.importorskip("gguf")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_gguf(path: Path, seed: int = 0) -> np.ndarray:
    """A 2-layer llama GGUF (float32 tensors) with a byte-level BPE vocabulary and a chat
    template, as llama.cpp lays it out; returns the token embedding written."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = [*specials, *bytes_to_unicode().values(), "Ġt"]
    types = [gguf.TokenType.CONTROL] * len(specials) + [gguf.TokenType.NORMAL] * (len(tokens) - len(specials))
    vocab, hidden, ff, layers, heads, kv = len(tokens), 16, 32, 2, 2, 1
    head_dim = hidden // heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_rope_dimension_count(head_dim)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    embedding = weight(vocab, hidden)
    writer.add_tensor("token_embd.weight", embedding)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    for i in range(layers):
        for name, shape in [
            ("attn_q", (hidden, hidden)), ("attn_k", (kv * head_dim, hidden)), ("attn_v", (kv * head_dim, hidden)),
            ("attn_output", (hidden, hidden)), ("ffn_gate", (ff, hidden)), ("ffn_up", (ff, hidden)),
            ("ffn_down", (hidden, ff)),
        ]:
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(*shape))
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return embedding


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf"
    return path, write_tiny_gguf(path)


def test_a_gguf_file_becomes_a_cached_hf_directory(tiny_gguf: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, embedding = tiny_gguf
    converted = resolve_gguf(f"gguf:{path}", tmp_path)
    model = AutoModelForCausalLM.from_pretrained(converted)
    np.testing.assert_array_equal(model.get_input_embeddings().weight.detach().numpy(), embedding)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template == CHAT_TEMPLATE
    assert tokenizer.decode(tokenizer("hi there")["input_ids"]) == "hi there"
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    assert resolve_gguf(f"gguf:{path}", tmp_path) == converted  # the second time: the cache
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(("uri", "error"), [("gguf:", ValueError), ("gguf:/nowhere/m.gguf", FileNotFoundError)])
def test_a_bad_gguf_path_is_named(uri: str, error: type[Exception], tmp_path: Path) -> None:
    with pytest.raises(error, match="gguf"):
        resolve_gguf(uri, tmp_path)


def test_the_trainer_runs_on_a_gguf_actor(
    tiny_gguf: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYPPO_CACHE", str(tmp_path / "cache"))
    rows = [{"prompt": f"{a}+{a}=", "answer": str(2 * a)} for a in range(12)]
    for split, part in (("train", rows[:8]), ("eval", rows[8:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    cfg = load_train_config(None, [
        f"actor.path=gguf:{tiny_gguf[0]}", "critic.path=null", "critic.init_from_actor_layers=1",
        f"data.train={tmp_path / 'train.jsonl'}", f"data.eval={tmp_path / 'eval.jsonl'}",
        "reward.answer_fallback=last_number", "rollout.prompts_per_step=2", "rollout.n=2",
        "rollout.max_new_tokens=4", "trainer.steps=1", "trainer.mini_batch_size=null",
        f"trainer.output_dir={tmp_path / 'run'}", "logging.tensorboard=false", "logging.progress_bar=false",
    ])
    trainer = Trainer(cfg)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    assert result.steps == 1 and np.isfinite(result.history[-1]["actor/loss"])
