"""The typed config of a training run: the single source of truth for YAML, CLI overrides and docs.

The root is :class:`TrainConfig`. Every section forbids unknown keys. The *defaults are the embedded
default run* (``python -m asyppo train`` with no arguments): a tiny warm-started toy actor, two
smaller toy critics and the toy addition task, sized to finish in under 3 minutes on 2 CPU cores
(settings measured in ``docs/embedded_default.md``). The paper's setups and the baselines are YAML
presets in ``configs/`` that override these defaults. ``docs/config.md`` is generated from this
module (``python -m asyppo config docs``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from asyppo.algos import AlgoConfig, check_critics_for_masks
from asyppo.data.chat import PAPER_SYSTEM_PROMPT
from asyppo.models import ModelConfig
from asyppo.rewards.config import RewardConfig


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class OptimConfig(Section):
    """AdamW with linear warm-up then decay, and gradient-norm clipping.

    Sections are embedded with their *class* defaults (a partial YAML or override of a section
    keeps the other keys' defaults), so each place with other defaults has its own subclass.
    """

    lr: float = Field(1e-6, gt=0, description="Peak learning rate (AsyPPO A.3: actor 1e-6, critics 1e-5).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (A.3: actor 0, critics 1e-2).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW (beta1, beta2).")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up from 0 to lr.")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Decay after warm-up, reaching min_lr_ratio * lr at the last step."
    )
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Final lr as a fraction of lr.")
    grad_clip: float | None = Field(1.0, gt=0, description="Max global gradient L2 norm; null: no clipping.")


class ActorOptimConfig(OptimConfig):
    """The actor's optimizer (defaults: the embedded toy run)."""

    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AsyPPO A.3: 1e-6 for a 4B-14B actor).")
    warmup_steps: int = Field(2, ge=0, description="Optimizer steps of linear warm-up from 0 to lr (A.3: 50).")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "cosine", description="Decay after warm-up, reaching min_lr_ratio * lr at the last step."
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Final lr as a fraction of lr.")


class CriticOptimConfig(OptimConfig):
    """Each critic's optimizer (defaults: the embedded toy run)."""

    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AsyPPO A.3: 1e-5 for 0.6B-1.7B critics).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (A.3: 1e-2).")
    warmup_steps: int = Field(2, ge=0, description="Optimizer steps of linear warm-up from 0 to lr (A.3: 5).")


class ActorConfig(ModelConfig):
    """The policy: any HF causal LM. Its tokenizer is the run's tokenizer."""

    path: str | None = Field("builtin:toy-actor", description="HF causal-LM directory or builtin:toy-actor.")
    optim: ActorOptimConfig = Field(default_factory=ActorOptimConfig, description="Actor optimizer.")
    replicas: int = Field(
        1,
        ge=1,
        description="Data-parallel workers of the actor (torch.distributed: gloo on CPU, NCCL on CUDA), each "
        "a process with its share of every batch, balanced on tokens; their gradients are summed, so N "
        "workers make the update one makes. Needs runtime.backend local or ray (docs/trainer.md).",
    )
    zero_stage: Literal[0, 1, 2, 3] | None = Field(
        None,
        description="DeepSpeed ZeRO for the actor's workers (pip install 'asyppo[deepspeed]'): 1 partitions the "
        "optimizer states over actor.replicas workers, 2 also the gradients, 3 also the weights; 0 is "
        "DeepSpeed's plain data parallelism; null: no DeepSpeed. Needs runtime.backend local or ray "
        "(docs/trainer.md).",
    )
    offload_optimizer: bool = Field(
        False, description="With zero_stage: keep the optimizer states in CPU memory (ZeRO-Offload)."
    )


class CriticConfig(ModelConfig):
    """The M critics: an HF backbone + scalar value head each, usually smaller than the actor."""

    path: str | None = Field(
        "builtin:toy-critic",
        description="HF model directory (same vocabulary as the actor) or builtin:toy-critic; "
        "null with init_from_actor_layers.",
    )
    count: int = Field(2, ge=1, description="Number of critics M (AsyPPO: 2 mini-critics).")
    data: Literal["disjoint", "shared", "random"] = Field(
        "disjoint",
        description="How responses are dealt to critics (docs/algorithm.md, step 3): disjoint shards of every "
        "prompt group (AsyPPO), shared (naive ensemble), random (uniform split ignoring groups).",
    )
    optim: CriticOptimConfig = Field(
        default_factory=CriticOptimConfig, description="Optimizer settings, one optimizer per critic."
    )
    warmup_steps: int = Field(
        0, ge=0, description="Training steps in which only the critics update (the actor waits)."
    )
    replicas: int = Field(
        1, ge=1, description="Data-parallel workers of each critic, as actor.replicas (docs/trainer.md)."
    )
    zero_stage: Literal[0, 1, 2, 3] | None = Field(
        None, description="DeepSpeed ZeRO for each critic's workers, as actor.zero_stage (docs/trainer.md)."
    )
    offload_optimizer: bool = Field(
        False, description="With zero_stage: keep the optimizer states in CPU memory (ZeRO-Offload)."
    )


class RolloutConfig(Section):
    """Sampling of G responses per prompt (docs/algorithm.md, step 1)."""

    engine: Literal["hf", "vllm"] = Field("hf", description="hf: transformers generate (CPU); vllm: GPU.")
    prompts_per_step: int = Field(64, ge=1, description="B: prompts sampled per training step.")
    n: int = Field(8, ge=1, description="G: responses per prompt.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (A.3: 0.99); 0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (A.3: 0.99).")
    top_k: int = Field(0, ge=0, description="Top-k sampling, 0 = off (A.3: 100).")
    max_new_tokens: int = Field(8, ge=1, description="Response length limit (A.3: 8000).")
    stop: list[str] = Field(
        default_factory=list,
        description="Stop strings: a response ends as soon as its text holds one of them, keeping the "
        "token that completes it, and counts as finished, like one that met EOS (e.g. [\"\\n\\nQuestion:\"] "
        "after a few-shot prompt; YAML reads escapes in double quotes only). Training and eval.",
    )
    batch_size: int = Field(512, ge=1, description="Max sequences per generate call (hf engine).")
    static_cache: bool | None = Field(
        None,
        description="hf engine: preallocate the KV cache for the whole response, which lets "
        "transformers compile the decode step on a GPU (torch.compile; the first calls of each shape "
        "compile); null: on for CUDA, off on a CPU.",
    )
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1, description="vllm engine only.")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm engine only.")
    max_staleness: Literal[0, 1] = Field(
        0,
        description="0: generate each batch with the latest weights, then train on it. 1: generate "
        "the batch of step t+1 (with the weights of step t-1) while step t trains, so the actor "
        "trains on data one policy version old (runtime.backend: local overlaps the two).",
    )

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if "" in value:
            raise ValueError(f"stop strings must not be empty (item {value.index('')} is '')")
        return value

    @property
    def log_prob_temperature(self) -> float:
        """The temperature log-probs are taken at: the sampling one, or 1 for greedy (0)."""
        return self.temperature if self.temperature > 0 else 1.0


#: The embedded default's training and held-out sums (``asyppo.toy``).
TOY_TRAIN, TOY_EVAL = "builtin:toy-train", "builtin:toy-eval"


class DataConfig(Section):
    """Prompt datasets: JSONL, Parquet, an HF datasets directory, or builtin:toy-train / toy-eval."""

    train: str = Field(TOY_TRAIN, description="Training prompts.")
    eval: str | None = Field(
        TOY_EVAL,
        description="Held-out prompts; null: split eval_size rows off train. The toy set goes only "
        "with the toy training set.",
    )
    prompt_key: str = Field("prompt", description="Field holding the prompt (text or chat messages).")
    answer_key: str = Field("answer", description="Field holding the reference answer.")
    system_prompt: str | None = Field(
        None, description=f"System prompt for chat templates (the paper's: {PAPER_SYSTEM_PROMPT!r})."
    )
    chat_template: bool = Field(
        True,
        description="Render prompts with the tokenizer's chat template when it has one; false: plain "
        "text (system prompt and messages joined by blank lines), e.g. for a few-shot prompt written "
        "out in full or a base model.",
    )
    eval_size: int = Field(256, ge=1, description="Rows held out of train when eval is null.")
    eval_limit: int | None = Field(None, ge=1, description="Evaluate on at most this many eval prompts.")
    max_prompt_tokens: int | None = Field(
        None,
        ge=1,
        description="Longest prompt in tokens, chat template included; null: the actor's context "
        "length (config.json max_position_embeddings) minus rollout.max_new_tokens.",
    )
    long_prompts: Literal["error", "drop"] = Field(
        "error",
        description="Prompts over max_prompt_tokens: error stops before any model loads, naming the "
        "first such row and how many there are; drop leaves them out and prints the same.",
    )


class TrainerConfig(Section):
    """The loop: steps, update-to-data ratio, batching, evaluation and checkpoints."""

    steps: int = Field(80, ge=1, description="Training steps (one rollout batch each).")
    ppo_epochs: int = Field(1, ge=1, description="UTD: passes over each rollout batch (A.3: 1 or 4).")
    mini_batch_size: int | None = Field(
        128, ge=1, description="Sequences per optimizer step; null: the whole batch (one step per epoch)."
    )
    micro_batch_tokens: int = Field(
        8192,
        ge=1,
        description=(
            "Token budget of one forward pass: the padded [B, P + R] input, prompts left-padded to "
            "P, responses right-padded to R (one sequence alone may exceed it); gradients accumulate."
        ),
    )
    reuse_prompt_prefix: bool = Field(
        True,
        description=(
            "The no-grad passes (old and reference log-probs, values, behaviour log-probs) and the "
            "actor's and critics' updates run each distinct prompt of a micro-batch once and its "
            "responses on a copy of its KV cache, micro-batches filled group by group: the same "
            "outputs and gradients (to rounding) for about the cost of the responses when prompts "
            "are long. Not in updates under ZeRO or gradient checkpointing. The cache holds up to "
            "micro_batch_tokens tokens of keys and values of every layer; false: one full pass per "
            "micro-batch."
        ),
    )
    seed: int = Field(42, description="Seeds sampling, sharding, masks and initialisation (A.3: 42).")
    eval_every: int = Field(10, ge=0, description="Evaluate every N steps (0: only before and after).")
    eval_at_start: bool = Field(
        True, description="Evaluate before the first step (the start of the accuracy curve); false skips it."
    )
    eval_k: int = Field(1, ge=1, description="Samples per eval prompt; >1 adds avg@k and pass@k.")
    eval_temperature: float = Field(1.0, gt=0, description="Temperature of the k samples when eval_k > 1.")
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0: only at the end).")
    output_dir: str = Field("runs/default", description="Run directory: metrics, checkpoints, export.")
    export_hf: bool = Field(True, description="Export the final actor as an HF directory.")
    max_nonfinite_steps: int = Field(
        3,
        ge=1,
        description="Stop the run after this many steps in a row whose update was skipped for a "
        "non-finite loss or gradient (the weights never take such an update).",
    )


class LoggingConfig(Section):
    """Where metrics go."""

    tensorboard: bool = Field(True, description="Write TensorBoard event files.")
    wandb_project: str | None = Field(None, description="W&B project (needs wandb installed); null: off.")
    progress_bar: bool = Field(True, description="Show a progress bar over steps.")
    console_every: int = Field(1, ge=0, description="Print the per-step line every N steps (0: never).")
    eval_samples: int = Field(
        3,
        ge=0,
        description="Prompt / response / answer / score rows kept per eval: a console table (unless "
        "console_every is 0), RUN_DIR/samples.jsonl, TensorBoard text and W&B; 0: none.",
    )


class RolePlacement(Section):
    """Where one role runs (``runtime.placement``)."""

    device: str | None = Field(
        None,
        description="Torch device of the role's model (e.g. cuda:1); null: the role's section "
        "(actor.device, critic.device; the rollout follows actor.device).",
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="torch intra-op threads in the role's process (local and ray backends; with ray also "
        "the CPUs it reserves); null: runtime.cpu_threads.",
    )
    nice: int | None = Field(
        None,
        ge=0,
        le=19,
        description="CPU scheduling niceness of the role's process (local and ray backends); null: 5 for critics "
        "(their updates run beside the actor's, which is the step's critical path), 0 for the others.",
    )


#: Roles that ``runtime.placement`` may name (critics also one by one: critic0, critic1, ...).
PLACEABLE_ROLES = ("actor", "critic", "rollout", "reference", "reward")


class RuntimeConfig(Section):
    """Where the roles run."""

    backend: Literal["inline", "local", "ray"] = Field(
        "inline",
        description="inline: all roles in the trainer's process, one call at a time. local: a "
        "process per role, arrays through shared memory, critics overlapped with the actor. ray: "
        "a Ray actor per role, on one node or several (pip install 'asyppo[ray]') "
        "(docs/trainer.md).",
    )
    address: str | None = Field(
        None,
        description="ray backend: the cluster to join (e.g. 10.0.0.1:6379, or 'auto' for the one "
        "started on this node with ray start); null: start a local one for the run.",
    )
    colocate_actor_rollout: bool = Field(
        True,
        description="ray backend: the actor and the rollout share one placement bundle (one node, "
        "the same GPUs), which the published weights need (shared memory / CUDA IPC); critics and "
        "the others get a bundle each.",
    )
    placement_strategy: Literal["PACK", "STRICT_PACK", "SPREAD"] = Field(
        "PACK",
        description="ray backend: the placement group's strategy over nodes (Ray's): PACK as few "
        "nodes as possible, STRICT_PACK one node, SPREAD over nodes.",
    )
    cpu_threads: int | None = Field(
        1,
        ge=1,
        description="torch intra-op CPU threads (per role process with the local backend); null: "
        "torch's default (all cores). Tiny models run fastest on 1: their matmuls are too small to "
        "amortise thread synchronisation.",
    )
    placement: dict[str, RolePlacement] = Field(
        default_factory=dict,
        description="Per role (actor, critic or critic<m>, rollout, reference, reward): device and "
        "cpu_threads, e.g. {critic: {device: cuda:1}}.",
    )
    release_freed_memory: bool = Field(
        False,
        description="Fix glibc's mmap/trim thresholds at 1 MiB so freed gradients and activations go "
        "back to the OS instead of staying in a fragmented heap. Measured with a 68M actor on CPU: "
        "peak RSS -5% and ~600 MiB less held between steps, but the actor update 1.15-2x slower "
        "(every large tensor becomes a fresh mmap); no-op off glibc.",
    )

    @model_validator(mode="after")
    def _known_roles(self) -> RuntimeConfig:
        import difflib

        for name in self.placement:
            if name in PLACEABLE_ROLES or (name.startswith("critic") and name[6:].isdigit()):
                continue
            close = difflib.get_close_matches(name, PLACEABLE_ROLES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"runtime.placement: unknown role {name!r} (roles: {', '.join(PLACEABLE_ROLES)}, critic<m>){hint}")
        return self

    def _placed(self, role: str, setting: str) -> Any:
        """``setting`` of ``role``'s placement (``critic<m>``, then ``critic``), or None if unset."""
        for key in (role, "critic" if role.startswith("critic") else None):
            value = getattr(self.placement[key], setting) if key in self.placement else None
            if value is not None:
                return value
        return None

    def device_of(self, role: str, default: str) -> str:
        """The device ``role`` runs on: its placement, else ``default``."""
        device = self._placed(role, "device")
        return default if device is None else str(device)

    def nice_of(self, role: str) -> int:
        """CPU niceness of ``role``'s process: its placement, else 5 for critics and 0 otherwise."""
        nice = self._placed(role, "nice")
        return (5 if role.startswith("critic") else 0) if nice is None else int(nice)

    def threads_of(self, role: str) -> int | None:
        """torch intra-op threads of ``role``'s process: its placement, else ``cpu_threads``."""
        threads = self._placed(role, "cpu_threads")
        return self.cpu_threads if threads is None else int(threads)


class TrainConfig(Section):
    """A whole training run. ``TrainConfig()`` is the embedded default."""

    actor: ActorConfig = Field(default_factory=ActorConfig)
    critic: CriticConfig = Field(default_factory=CriticConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _replicas_need_processes(self) -> TrainConfig:
        """Data-parallel workers (and DeepSpeed's process group) are processes: the inline backend
        has one."""
        if self.runtime.backend != "inline":
            return self
        for role in ("actor", "critic"):
            section = getattr(self, role)
            if section.replicas > 1:
                raise ValueError(
                    f"{role}.replicas: {section.replicas} data-parallel workers need a process each; runtime.backend "
                    "inline runs every role in the trainer's process: set runtime.backend=local (or ray)"
                )
            if section.zero_stage is not None:
                raise ValueError(
                    f"{role}.zero_stage: DeepSpeed runs the role in a process group of its own workers; "
                    "runtime.backend inline runs every role in the trainer's process: set runtime.backend=local "
                    "(or ray)"
                )
        return self

    @model_validator(mode="after")
    def _no_toy_eval_beside_other_training_data(self) -> TrainConfig:
        """Other training data must not be evaluated on the embedded toy sums."""
        if self.data.train != TOY_TRAIN and self.data.eval == TOY_EVAL:
            raise ValueError(
                f"data.eval is still the embedded toy sums ({TOY_EVAL}) but data.train is "
                f"{self.data.train!r}: set data.eval to your held-out file, or data.eval=null to hold "
                "out data.eval_size rows of data.train"
            )
        return self

    @model_validator(mode="after")
    def _sections_agree(self) -> TrainConfig:
        """Checks that span sections: critics vs. masks, mini-batch vs. rollout batch, overlong
        buffer vs. generation budget; and the seed's range."""
        if not 0 <= self.trainer.seed < 2**32:
            # numpy's global seeding (asyppo.trainer.setup.configure_torch) takes [0, 2**32).
            raise ValueError(f"trainer.seed must be in [0, 2**32 - 1], got {self.trainer.seed}")
        if self.algo.uses_critic:
            check_critics_for_masks(
                self.critic.count, self.algo.adv_mask_ratio, self.algo.ent_filter_ratio, count="critic.count"
            )
        if self.trainer.mini_batch_size is not None:
            batch = self.rollout.prompts_per_step * self.rollout.n
            if self.trainer.mini_batch_size > batch:
                raise ValueError(
                    f"trainer.mini_batch_size ({self.trainer.mini_batch_size}) exceeds the rollout batch "
                    f"rollout.prompts_per_step * rollout.n = {batch}"
                )
        buffer = self.reward.overlong_buffer
        if buffer is not None and buffer > self.rollout.max_new_tokens:
            raise ValueError(
                f"reward.overlong_buffer ({buffer}) exceeds rollout.max_new_tokens "
                f"({self.rollout.max_new_tokens}): the penalty buffer is the last tokens of the budget"
            )
        return self
