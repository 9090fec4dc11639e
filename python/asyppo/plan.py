"""``python -m asyppo plan``: which device each role takes and an estimate of its memory.

From a :class:`~asyppo.config.schema.TrainConfig` alone (no weight is loaded; only each model's
``config.json`` is read), per role: its device (``runtime.placement``, else ``actor.device`` /
``critic.device``, as the trainer places it), its parameter count (from the architecture), and its
memory: weights, gradients, optimizer states, activations of one training micro-batch (the logits
apart, since they dominate for large vocabularies) and, for the rollout, the KV cache of one
``generate`` call. Totals per device, and a warning for every GPU whose total exceeds its memory.

Everything is an estimate of *tensor* memory; ``docs/planning.md`` states every formula, and
``benchmarks/plan_vs_measured.py`` compares it with the peaks the trainer logs. Assumptions:

* **Parameters** of a dense decoder (Llama / Qwen2 / Qwen3 / Mistral families: embeddings, per layer
  q/k/v/o projections (+ biases where the family has them, + Qwen3's per-head q/k norms), gated MLP,
  two RMSNorms; final norm; an LM head unless the embeddings are tied). Other ``model_type``\\ s are
  counted exactly by building the model on the ``meta`` device (no memory). A critic is its
  backbone (no LM head) plus the ``hidden -> 1`` value head; ``critic.init_from_actor_layers=N``
  is the actor's config cut to N layers.
* **Bytes.** Weights and gradients in the model's ``dtype``. Optimizer states, ``optim_states``:
  ``"trainer"`` (default) is what this trainer allocates today: ``torch.optim.AdamW`` keeps its two
  moments in the parameter dtype and no master copy (4 B/param in bf16, 8 B/param in fp32);
  ``"mixed"`` is mixed-precision AdamW as DeepSpeed / Megatron keep it: two fp32 moments plus an fp32
  master copy of the weights when the dtype is not fp32 (12 B/param in bf16, 8 in fp32).
* **ZeRO** stage ``s`` over ``dp`` data-parallel workers divides by ``dp``: stage 1 the optimizer
  states, stage 2 also the gradients, stage 3 also the weights. ``actor.zero_stage`` /
  ``critic.zero_stage`` and ``actor.replicas`` / ``critic.replicas`` are read when ``--zero-stage``
  / ``--dp`` are not given; each row is then one of the role's workers.
* **Activations** of one micro-batch of ``cells`` = ``min(trainer.micro_batch_tokens, sequences x
  (P + R))`` padded positions (P prompt tokens, R = ``rollout.max_new_tokens``), saved for backward:
  per cell and layer ``6 h + 5 q + 5 kv + 4 i`` values (h hidden, q = heads x head_dim, kv =
  kv_heads x head_dim, i intermediate: two RMSNorms ~3 h each, q/k/v with their norms and rotary
  ~5 each, the gated MLP's gate, up, act(gate) and product), in the model dtype, attention scores
  not stored (SDPA / flash kernels; ``attn_implementation: eager`` adds ``2 x heads x L^2`` per row
  and layer). With activation checkpointing (``gradient_checkpointing``) a layer keeps only its
  input (h) and one layer's full set is live during its recomputation.
* **Logits** (the actor and the reference): the LM head runs only on the R + 1 response positions
  of each row (``logits_to_keep``), ``rows x (R + 1) x V`` in the model dtype; training holds them
  and their gradient (2 copies), plus the chunked log-softmax's float32 temporaries (``rows x
  min(512, R) x V x 4 B x 4``). The forward-only passes (old log-probs, the reference) hold one copy.
* **KV cache** of the HF rollout engine: ``2 x layers x kv_heads x head_dim x bytes x (P + R) x
  sequences per generate call`` (``min(rollout.batch_size, prompts_per_step x n)``), plus the
  sampling's float32 logits (``sequences x V x 4 B x 3``). The vLLM engine reserves
  ``rollout.gpu_memory_utilization`` of its GPU (weights and KV cache inside it), whatever the batch.
* **Rollout weights**: with the HF engine and synchronous generation the rollout reads the actor's
  own parameters (``live``: nothing more on the actor's device); asynchronous generation
  (``rollout.max_staleness: 1``) publishes a copy (``snapshot``: one more copy of the weights), and a
  rollout on another device holds its own copy.
* **Not counted**: the framework itself (CUDA context and kernels ~0.5-1 GB per process and GPU;
  on the CPU the Python / torch / transformers baseline of ~0.5-0.8 GB per process), allocator
  fragmentation, the rollout batch (tiny), the reward role (~0; its verifier runs on the CPU).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from asyppo.config.schema import TrainConfig

GiB = float(2**30)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: The chunk of sequence positions :mod:`asyppo.algos.logprobs` upcasts to float32 at a time.
LOGPROB_CHUNK = 512
#: float32 temporaries of one log-softmax chunk (the upcast, exp, the entropy's product, slack).
LOGPROB_CHUNK_COPIES = 4
#: Prompt length assumed when neither ``--prompt-tokens`` nor ``data.max_prompt_tokens`` is set.
DEFAULT_PROMPT_TOKENS = 512
OptimStates = Literal["trainer", "mixed"]

#: Architectures of the models the paper presets name, copied from their Hugging Face
#: ``config.json`` files, used only when the path is not a local directory (nothing is downloaded).
KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    f"Qwen/Qwen3-{size}{suffix}": {
        "model_type": "qwen3", "vocab_size": 151936, "head_dim": 128, "num_key_value_heads": 8,
        "max_position_embeddings": 32768, "attention_bias": False, **shape,
    }
    for size, shape in {
        "0.6B": {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
                 "num_attention_heads": 16, "tie_word_embeddings": True},
        "1.7B": {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                 "num_attention_heads": 16, "tie_word_embeddings": True},
        "4B": {"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
               "num_attention_heads": 32, "tie_word_embeddings": True},
        "8B": {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
               "num_attention_heads": 32, "tie_word_embeddings": False},
        "14B": {"hidden_size": 5120, "intermediate_size": 17408, "num_hidden_layers": 40,
                "num_attention_heads": 40, "tie_word_embeddings": False},
    }.items()
    for suffix in ("", "-Base")
}

#: Families whose parameters the closed form counts (others: built on the meta device).
DENSE_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass(frozen=True)
class Architecture:
    """The shape of a dense decoder, as far as memory is concerned."""

    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    context: int | None = None  # max_position_embeddings
    meta_count: tuple[int, int] | None = None  # (causal LM, backbone) for families counted on meta

    @classmethod
    def from_hf(cls, config: Any) -> Architecture:
        """From a transformers ``PretrainedConfig`` (or anything with its attributes)."""
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        model_type = str(getattr(config, "model_type", ""))
        attention_bias = bool(getattr(config, "attention_bias", False))
        arch = cls(
            model_type=model_type,
            hidden=hidden,
            intermediate=int(config.intermediate_size),
            layers=int(config.num_hidden_layers),
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(config, "head_dim", None) or hidden // heads),
            vocab=int(config.vocab_size),
            tied=bool(getattr(config, "tie_word_embeddings", False)),
            qkv_bias=model_type == "qwen2" or attention_bias,
            o_bias=model_type != "qwen2" and attention_bias,
            mlp_bias=bool(getattr(config, "mlp_bias", False)),
            qk_norm=model_type == "qwen3",
            context=getattr(config, "max_position_embeddings", None),
        )
        if model_type not in DENSE_FAMILIES:
            return cls(**{**arch.__dict__, "meta_count": _count_on_meta(config)})
        return arch

    def with_layers(self, layers: int) -> Architecture:
        """The first ``layers`` layers (``critic.init_from_actor_layers``)."""
        if self.meta_count is not None:
            raise ValueError(f"init_from_actor_layers: cannot cut a {self.model_type!r} model without its config")
        return Architecture(**{**self.__dict__, "layers": layers})

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_parameters(self) -> int:
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        attention = h * q + 2 * h * kv + q * h
        attention += (q + 2 * kv) * self.qkv_bias + h * self.o_bias + 2 * self.head_dim * self.qk_norm
        mlp = 3 * h * i + (2 * i + h) * self.mlp_bias
        return attention + mlp + 2 * h

    def backbone_parameters(self) -> int:
        """Embeddings, layers and the final norm (what ``AutoModel`` builds)."""
        if self.meta_count is not None:
            return self.meta_count[1]
        return self.vocab * self.hidden + self.layers * self.layer_parameters() + self.hidden

    def causal_lm_parameters(self) -> int:
        """The backbone plus an LM head unless tied (distinct parameters, tied ones once)."""
        if self.meta_count is not None:
            return self.meta_count[0]
        return self.backbone_parameters() + (0 if self.tied else self.vocab * self.hidden)

    def critic_parameters(self) -> int:
        """A :class:`~asyppo.models.ValueModel`: the backbone plus the ``hidden -> 1`` value head."""
        return self.backbone_parameters() + self.hidden + 1


def _count_on_meta(config: Any) -> tuple[int, int]:
    """Exact (causal LM, backbone) parameter counts of any architecture, built on ``meta``."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from asyppo.models.loading import quiet_transformers

    with torch.device("meta"), quiet_transformers():
        lm = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        backbone = sum(p.numel() for p in AutoModel.from_config(config).parameters())
    return int(lm), int(backbone)


def load_architecture(path: str, *, what: str, override: str | None = None) -> tuple[Architecture, str]:
    """The architecture of the model at ``path`` and where it was read.

    ``override`` (a ``config.json`` file or a directory holding one) wins; then a local directory
    (``builtin:`` URIs resolve as the trainer resolves them, building the toy assets on first use);
    then :data:`KNOWN_ARCHITECTURES` for a hub name that is not a local path. Anything else is a
    FileNotFoundError naming ``--model-config``.
    """
    from asyppo.models import read_model_config

    if override is not None:
        where = Path(override)
        return Architecture.from_hf(read_model_config(where.parent if where.is_file() else where, what=what)), str(where)
    if path.startswith("builtin:"):
        from asyppo.trainer.setup import resolve

        path = resolve(path)
    if Path(path).expanduser().is_dir():
        return Architecture.from_hf(read_model_config(Path(path).expanduser(), what=what)), path
    if path in KNOWN_ARCHITECTURES:
        from transformers import AutoConfig

        config = AutoConfig.for_model(**KNOWN_ARCHITECTURES[path])
        return Architecture.from_hf(config), f"built-in table ({path})"
    raise FileNotFoundError(
        f"{what}: {path} is not a local model directory and not one of the built-in architectures "
        f"({', '.join(sorted({k.removesuffix('-Base') for k in KNOWN_ARCHITECTURES}))}); pass "
        f"--model-config {what.split()[0]}=path/to/config.json"
    )


def zero_divisors(stage: int, dp: int) -> tuple[int, int, int]:
    """(weights, gradients, optimizer states) divisors of ZeRO ``stage`` over ``dp`` workers."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"zero stage: expected 0, 1, 2 or 3, got {stage}")
    if dp < 1:
        raise ValueError(f"dp: expected >= 1 data-parallel workers, got {dp}")
    return (dp if stage >= 3 else 1, dp if stage >= 2 else 1, dp if stage >= 1 else 1)


def optimizer_bytes_per_param(dtype: str, optim_states: OptimStates) -> int:
    """AdamW's state per parameter (see the module docstring for ``trainer`` vs ``mixed``)."""
    if optim_states == "trainer":
        return 2 * DTYPE_BYTES[dtype]
    if optim_states == "mixed":
        return 8 + (0 if dtype == "float32" else 4)
    raise ValueError(f"optim_states: expected 'trainer' or 'mixed', got {optim_states!r}")


def kv_cache_bytes(arch: Architecture, *, dtype: str, sequences: int, length: int) -> int:
    """``2 x layers x kv_heads x head_dim x bytes x length x sequences`` (keys and values)."""
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * DTYPE_BYTES[dtype] * length * sequences


def activation_bytes(
    arch: Architecture, *, cells: int, rows: int, dtype: str, checkpointing: bool, eager_attention: bool = False
) -> int:
    """Activations one micro-batch of ``cells`` padded positions (``rows`` sequences) keeps for
    backward, the logits apart (module docstring)."""
    per_layer_cell = 6 * arch.hidden + 5 * arch.q_dim + 5 * arch.kv_dim + 4 * arch.intermediate
    length = cells / max(rows, 1)
    scores = 2 * arch.heads * length * length * rows if eager_attention else 0
    full_layer = cells * per_layer_cell + scores
    if checkpointing:
        total = arch.layers * cells * arch.hidden + full_layer
    else:
        total = arch.layers * full_layer
    total += 4 * cells * arch.hidden  # the final norm and the head's input
    return int(total * DTYPE_BYTES[dtype])


def logits_bytes(arch: Architecture, *, rows: int, response: int, dtype: str, training: bool) -> int:
    """The response positions' logits (+ their gradient when training) and the float32 chunk
    temporaries of the log-softmax."""
    positions = rows * (response + 1)
    copies = 2 if training else 1
    chunk = rows * min(LOGPROB_CHUNK, response + 1) * arch.vocab * 4 * LOGPROB_CHUNK_COPIES
    return int(positions * arch.vocab * DTYPE_BYTES[dtype] * copies + chunk)


@dataclass
class RoleEstimate:
    """One role's memory, in bytes, on ``device``."""

    role: str
    device: str
    params: int
    weights: int = 0
    grads: int = 0
    optimizer: int = 0
    activations: int = 0
    logits: int = 0
    kv_cache: int = 0
    reserved: int = 0  # memory an engine reserves up front (vLLM's gpu_memory_utilization)
    shared_weights: bool = False  # weights are another role's (counted there)
    note: str = ""

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.activations + self.logits + self.kv_cache + self.reserved


@dataclass
class Plan:
    """The per-role estimates, per-device totals, and what the estimate assumed."""

    roles: list[RoleEstimate]
    device_memory: dict[str, float]  # bytes available per device (None entries are not compared)
    assumptions: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.roles:
            out[r.device] = out.get(r.device, 0) + r.total
        return out

    def warnings(self) -> list[str]:
        lines = []
        for device, total in self.totals().items():
            limit = self.device_memory.get(device)
            if limit and total > limit:
                roles = ", ".join(r.role for r in self.roles if r.device == device)
                what = "GPU" if device.startswith("cuda") else "the machine's RAM"
                lines.append(
                    f"{device} would overflow: {total / GiB:.1f} GiB estimated for {roles} > "
                    f"{limit / GiB:.1f} GiB of {what}"
                )
        return lines


def _system_ram() -> float | None:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _zero_stage(section: Any, given: int | None) -> int:
    return int(given if given is not None else section.zero_stage or 0)


def _workers(section: Any, given: int | None) -> int:
    return int(given if given is not None else section.replicas)


def plan_memory(
    cfg: TrainConfig,
    *,
    zero_stage: int | None = None,
    dp: int | None = None,
    gpu_memory_gb: float = 80.0,
    prompt_tokens: int | None = None,
    model_configs: dict[str, str] | None = None,
    optim_states: OptimStates = "trainer",
) -> Plan:
    """Place the roles as the trainer would and estimate each one's memory (module docstring).

    Args:
        zero_stage: ZeRO stage of the trained models (actor and critics); None: their config's
            ``zero_stage``, else 0.
        dp: data-parallel workers the ZeRO shards are spread over; None: their config's ``replicas``.
        gpu_memory_gb: memory of each GPU (GiB); CPU devices are compared with this machine's RAM.
        prompt_tokens: P; None: ``data.max_prompt_tokens``, else :data:`DEFAULT_PROMPT_TOKENS`
            (capped by the actor's context minus R).
        model_configs: ``{"actor" | "critic": config.json path}`` overriding where an architecture
            is read.
    """
    overrides = model_configs or {}
    unknown = set(overrides) - {"actor", "critic"}
    if unknown:
        raise ValueError(f"--model-config: roles are actor and critic, got {sorted(unknown)}")
    rt = cfg.runtime
    actor_arch, actor_src = load_architecture(cfg.actor.path or "", what="actor", override=overrides.get("actor"))
    sources = {"actor": actor_src}
    R = cfg.rollout.max_new_tokens
    assumptions = []
    if prompt_tokens is None:
        prompt_tokens = cfg.data.max_prompt_tokens or DEFAULT_PROMPT_TOKENS
        source = "data.max_prompt_tokens" if cfg.data.max_prompt_tokens else "assumed, --prompt-tokens sets it"
        if not cfg.data.max_prompt_tokens and actor_arch.context and actor_arch.context - R < prompt_tokens:
            prompt_tokens = max(1, actor_arch.context - R)
            source = "the actor's context minus R: a worst case; --prompt-tokens sets it"
    else:
        source = "--prompt-tokens"
    P = int(prompt_tokens)
    assumptions.append(f"prompt tokens P = {P} ({source}), response tokens R = {R} (rollout.max_new_tokens)")
    length = P + R
    batch = cfg.rollout.prompts_per_step * cfg.rollout.n

    def micro(sequences: int) -> tuple[int, int]:
        """(cells, rows) of the largest micro-batch over ``sequences`` rows of ``length``."""
        rows = max(1, min(sequences, cfg.trainer.micro_batch_tokens // length))
        return rows * length, rows

    gpu_bytes = gpu_memory_gb * GiB
    roles: list[RoleEstimate] = []
    actor_device = rt.device_of("actor", cfg.actor.device)
    dt = cfg.actor.dtype
    stage = _zero_stage(cfg.actor, zero_stage)
    actor_dp = _workers(cfg.actor, dp)
    w_div, g_div, o_div = zero_divisors(stage, actor_dp)
    n_actor = actor_arch.causal_lm_parameters()
    mini = cfg.trainer.mini_batch_size or batch
    cells, rows = micro(mini)
    eager = cfg.actor.attn_implementation == "eager"
    live = cfg.rollout.max_staleness == 0 and cfg.rollout.engine == "hf"
    actor = RoleEstimate(
        "actor", actor_device, n_actor,
        weights=math.ceil(n_actor * DTYPE_BYTES[dt] / w_div),
        grads=math.ceil(n_actor * DTYPE_BYTES[dt] / g_div),
        optimizer=math.ceil(n_actor * optimizer_bytes_per_param(dt, optim_states) / o_div),
        activations=activation_bytes(actor_arch, cells=cells, rows=rows, dtype=dt,
                                     checkpointing=cfg.actor.gradient_checkpointing, eager_attention=eager),
        logits=logits_bytes(actor_arch, rows=rows, response=R, dtype=dt, training=True),
        note=f"micro-batch {rows} x {length} cells" + ("" if live else "; + a published copy of the weights"),
    )
    if not live:
        actor.weights += n_actor * DTYPE_BYTES[dt]  # the snapshot the rollout reads (asyppo.runtime.weights)
    roles.append(actor)

    if cfg.algo.kl_coef > 0:
        cells_ref, rows_ref = micro(batch)
        roles.append(RoleEstimate(
            "reference", rt.device_of("reference", actor_device), n_actor,
            weights=n_actor * DTYPE_BYTES[dt],
            activations=activation_bytes(actor_arch, cells=cells_ref, rows=rows_ref, dtype=dt, checkpointing=True)
            - actor_arch.layers * cells_ref * actor_arch.hidden * DTYPE_BYTES[dt],  # forward only: one layer live
            logits=logits_bytes(actor_arch, rows=rows_ref, response=R, dtype=dt, training=False),
            note="frozen, forward only",
        ))

    if cfg.algo.uses_critic:
        c = cfg.critic
        if c.init_from_actor_layers:
            critic_arch, critic_src = actor_arch.with_layers(c.init_from_actor_layers), f"actor's first {c.init_from_actor_layers} layers"
        else:
            critic_arch, critic_src = load_architecture(c.path or "", what="critic", override=overrides.get("critic"))
        sources["critic"] = critic_src
        n_critic = critic_arch.critic_parameters()
        cdt = c.dtype
        cstage = _zero_stage(c, zero_stage)
        cw, cg, co = zero_divisors(cstage, _workers(c, dp))
        shard = max(1, -(-batch // c.count)) if c.data != "shared" else batch
        ccells, crows = micro(shard)
        for m in range(c.count):
            roles.append(RoleEstimate(
                f"critic{m}", rt.device_of(f"critic{m}", c.device), n_critic,
                weights=math.ceil(n_critic * DTYPE_BYTES[cdt] / cw),
                grads=math.ceil(n_critic * DTYPE_BYTES[cdt] / cg),
                optimizer=math.ceil(n_critic * optimizer_bytes_per_param(cdt, optim_states) / co),
                activations=activation_bytes(critic_arch, cells=ccells, rows=crows, dtype=cdt,
                                             checkpointing=c.gradient_checkpointing,
                                             eager_attention=c.attn_implementation == "eager"),
                note=f"micro-batch {crows} x {length} cells",
            ))

    rollout_device = rt.device_of("rollout", actor_device)
    sequences = min(cfg.rollout.batch_size, batch)
    if cfg.rollout.engine == "vllm":
        kv = kv_cache_bytes(actor_arch, dtype=dt, sequences=batch, length=length)
        reserved = cfg.rollout.gpu_memory_utilization * gpu_bytes if rollout_device.startswith("cuda") else 0
        need = n_actor * DTYPE_BYTES[dt] + kv
        roles.append(RoleEstimate(
            "rollout", rollout_device, n_actor, reserved=int(reserved),
            note=f"vLLM reserves rollout.gpu_memory_utilization of the GPU for weights + KV cache; all "
                 f"{batch} sequences at once would take {need / GiB:.1f} GiB"
                 + (", so it generates them in waves" if need > reserved else ""),
        ))
    else:
        same = rollout_device == actor_device
        rollout = RoleEstimate(
            "rollout", rollout_device, n_actor,
            weights=0 if (live and same) else n_actor * DTYPE_BYTES[dt],
            kv_cache=kv_cache_bytes(actor_arch, dtype=dt, sequences=sequences, length=length),
            logits=sequences * actor_arch.vocab * 4 * 3,
            shared_weights=live and same,
            note=f"{sequences} seqs per generate call" + ("; reads the actor's weights" if live and same else ""),
        )
        roles.append(rollout)
    roles.append(RoleEstimate("reward", "cpu", 0, note="verifier on the CPU, ~0"))

    ram = _system_ram()
    memory: dict[str, float] = {}
    for r in roles:
        if r.device.startswith("cuda"):
            memory[r.device] = gpu_bytes
        elif r.device == "cpu" and ram:
            memory[r.device] = ram
    assumptions.append(
        f"optimizer states: {optim_states} ("
        + ("torch AdamW as this trainer runs it: 2 moments in the parameter dtype"
           if optim_states == "trainer" else "2 fp32 moments + an fp32 master copy when not fp32")
        + f"); ZeRO stage {stage} (actor) over dp = {actor_dp}"
    )
    assumptions.append("not counted: CUDA context / Python+torch baseline per process (~0.5-1 GB), fragmentation")
    return Plan(roles=roles, device_memory=memory, assumptions=assumptions, sources=sources)


def _size(value: float, unit: float = GiB) -> str:
    return "-" if value == 0 else f"{value / unit:.2f}" if unit == GiB else f"{value / unit:.1f}"


COMPONENTS = (("weights", "weights"), ("grads", "grads"), ("optimizer", "optim"), ("activations", "activ."),
              ("logits", "logits"), ("kv_cache", "KV cache"), ("reserved", "reserved"))


def print_plan(plan: Plan, console: Any = None) -> None:
    """The plan as rich tables: per role (the components any role has), per device, then the
    notes, the assumptions and any warnings."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        console.width = max(console.width, 116)  # the role table's 10 narrow columns, unwrapped
    unit, unit_name = (GiB, "GiB") if max(plan.totals().values(), default=0) >= 2**30 else (2.0**20, "MiB")
    shown = [(key, title) for key, title in COMPONENTS
             if any(getattr(r, key) for r in plan.roles) or (key == "weights" and any(r.shared_weights for r in plan.roles))]
    table = Table(title=f"estimated memory per role ({unit_name})")
    for name in ("role", "device", "params", *(title for _, title in shown), "total"):
        table.add_column(name, justify="left" if name in ("role", "device") else "right", no_wrap=True)
    for r in plan.roles:
        params = f"{r.params / 1e9:.2f}B" if r.params >= 1e8 else f"{r.params / 1e6:.2f}M" if r.params else "-"
        cells = ["shared" if key == "weights" and r.shared_weights else _size(getattr(r, key), unit) for key, _ in shown]
        table.add_row(r.role, r.device, params, *cells, _size(r.total, unit))
    console.print(table)
    devices = Table(title=f"per device ({unit_name})")
    for name in ("device", "roles", "estimated", "available", "fits"):
        devices.add_column(name, justify="right" if name in ("estimated", "available") else "left")
    for device, total in plan.totals().items():
        limit = plan.device_memory.get(device)
        fits = "-" if not limit else ("yes" if total <= limit else "NO")
        devices.add_row(device, ", ".join(r.role for r in plan.roles if r.device == device), _size(total, unit),
                        _size(limit, unit) if limit else "not compared", fits)
    console.print(devices)
    for r in plan.roles:
        if r.note:
            console.print(f"{r.role}: {r.note}")
    for role, source in plan.sources.items():
        console.print(f"{role} architecture: {source}")
    for line in plan.assumptions:
        console.print(f"assumed: {line}")
    for line in plan.warnings():
        console.print(f"[bold red]warning:[/] {line}")


def add_parser(commands: Any) -> None:
    """The ``plan`` subcommand of ``python -m asyppo``."""
    plan = commands.add_parser("plan", help="devices and estimated memory per role (no weight is loaded)")
    plan.add_argument("--config", help="YAML config file (see configs/)")
    plan.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], default=None,
                      help="ZeRO stage of the trained models (default: the config's, else 0)")
    plan.add_argument("--dp", type=int, default=None,
                      help="data-parallel workers ZeRO shards over (default: actor.replicas / critic.replicas)")
    plan.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory of each GPU, GiB (default 80)")
    plan.add_argument("--prompt-tokens", type=int, default=None,
                      help=f"prompt length P (default: data.max_prompt_tokens, else {DEFAULT_PROMPT_TOKENS})")
    plan.add_argument("--optim-states", choices=["trainer", "mixed"], default="trainer",
                      help="trainer: torch AdamW moments in the parameter dtype (this trainer); "
                           "mixed: fp32 moments + fp32 master weights (DeepSpeed-style)")
    plan.add_argument("--model-config", action="append", default=[], metavar="ROLE=PATH",
                      help="read ROLE's (actor, critic) architecture from this config.json (repeatable)")
    plan.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")


def run(args: Any) -> int:
    """``python -m asyppo plan``: print the plan; exit status 3 when a device would overflow."""
    from asyppo.config import ConfigError, load_train_config

    cfg = load_train_config(args.config, args.overrides)
    model_configs = {}
    for item in args.model_config:
        role, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--model-config: expected ROLE=PATH (ROLE actor or critic), got {item!r}")
        model_configs[role] = path
    plan = plan_memory(cfg, zero_stage=args.zero_stage, dp=args.dp, gpu_memory_gb=args.gpu_memory_gb,
                       prompt_tokens=args.prompt_tokens, model_configs=model_configs,
                       optim_states=args.optim_states)
    print_plan(plan)
    return 3 if plan.warnings() else 0
