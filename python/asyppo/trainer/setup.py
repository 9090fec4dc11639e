"""Build everything a run needs from a :class:`TrainConfig`, before the first step.

Order matters for failing early and cheaply: paths and datasets are checked (bad rows fail with
file and line) and tokenizers compared before any model weight is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from asyppo import data, toy
from asyppo.cache import default_cache_dir
from asyppo.config.schema import TrainConfig
from asyppo.models import check_same_tokenizer, load_tokenizer, read_model_config, stop_token_ids
from asyppo.models.gguf import PREFIX as GGUF_PREFIX
from asyppo.models.gguf import resolve_gguf
from asyppo.runtime import RayPlan, RayRuntime, RoleHandle, RoleResources, Runtime, make_runtime
from asyppo.runtime.allocator import release_freed_memory
from asyppo.runtime.replicas import ReplicaGroup, worker_name
from asyppo.trainer.roles.actor import ActorRole
from asyppo.trainer.roles.critic import CriticRole
from asyppo.trainer.roles.reward import RewardRole
from asyppo.trainer.roles.rollout import RolloutRole

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def resolve(uri: str) -> str:
    """A ``builtin:`` or ``gguf:`` URI becomes its cached local path (built on first use,
    `asyppo.toy.resolve_builtin`, `asyppo.models.gguf.resolve_gguf`); others are unchanged."""
    if uri.startswith("builtin:"):
        return str(toy.resolve_builtin(uri, default_cache_dir()))
    if uri.startswith(GGUF_PREFIX):
        return str(resolve_gguf(uri, default_cache_dir()))
    return uri


def configure_torch(cfg: TrainConfig) -> None:
    """Thread count, allocator and seeds, before anything (the toy warm-start included) touches torch."""
    if cfg.runtime.release_freed_memory:
        release_freed_memory()
    if cfg.runtime.cpu_threads is not None:
        torch.set_num_threads(cfg.runtime.cpu_threads)
    torch.manual_seed(cfg.trainer.seed)
    np.random.seed(cfg.trainer.seed)


@dataclass
class Roles:
    """The handles the loop talks to."""

    runtime: Runtime
    rollout: RoleHandle
    actor: RoleHandle
    critics: list[RoleHandle]
    reward: RoleHandle
    reference: RoleHandle | None


@dataclass
class Datasets:
    train: list[data.PromptRecord]
    eval: list[data.PromptRecord]


def load_datasets(cfg: TrainConfig) -> Datasets:
    """Train and held-out prompts; a split of train when ``data.eval`` is null."""
    keys = {"prompt_key": cfg.data.prompt_key, "answer_key": cfg.data.answer_key}
    train = data.load_prompts(resolve(cfg.data.train), **keys)
    if cfg.data.eval is None:
        train, held_out = data.split_train_eval(train, eval_size=cfg.data.eval_size, seed=cfg.trainer.seed)
    else:
        held_out = data.load_prompts(resolve(cfg.data.eval), **keys)
    if cfg.data.eval_limit is not None:
        held_out = held_out[: cfg.data.eval_limit]
    if not train:
        raise ValueError(f"data.train: {cfg.data.train} holds no prompts")
    return Datasets(train=train, eval=held_out)


#: What to do when the critic does not read the actor's tokens.
CRITIC_VOCABULARY_ADVICE = (
    "set critic.path to a model with the actor's tokenizer (e.g. a smaller model of the same family), "
    "or critic.path=null with critic.init_from_actor_layers=N to build each critic from the actor's "
    "first N layers"
)


def check_critic_vocabulary(tokenizer: PreTrainedTokenizerBase, critic_path: str) -> None:
    """Critics read the actor's token ids: their vocabulary must be the actor's (clear error, with
    the two ways out, if not)."""
    path = Path(critic_path)
    try:
        if any((path / name).is_file() for name in TOKENIZER_FILES):
            check_same_tokenizer(tokenizer, load_tokenizer(path), critic_name=f"critic ({path})")
            return
        vocab_size = int(read_model_config(path, what=f"critic ({path})").vocab_size)
        if vocab_size < len(tokenizer):
            raise ValueError(
                f"critic ({path}) has no tokenizer and its embedding holds {vocab_size} ids, fewer than "
                f"the actor tokenizer's {len(tokenizer)}: critics must share the actor's vocabulary"
            )
    except ValueError as exc:
        raise ValueError(f"{exc}; {CRITIC_VOCABULARY_ADVICE}") from None


def optimizer_steps_per_train_step(cfg: TrainConfig) -> int:
    batch = cfg.rollout.prompts_per_step * cfg.rollout.n
    size = cfg.trainer.mini_batch_size or batch
    return cfg.trainer.ppo_epochs * -(-batch // size)


#: The methods of each trained role that a data-parallel group splits by batch (``runtime.replicas``).
ACTOR_SPLIT = frozenset({"log_probs"})
CRITIC_SPLIT = frozenset({"values"})


def replicas_of(cfg: TrainConfig, role: str) -> int:
    """Data-parallel workers of ``role``: ``actor.replicas``, ``critic.replicas`` for each critic, else 1."""
    if role == "actor":
        return cfg.actor.replicas
    return cfg.critic.replicas if role.startswith("critic") else 1


def in_group(cfg: TrainConfig, role: str) -> bool:
    """Whether ``role`` runs as a data-parallel group: several workers, or any number under ZeRO
    (DeepSpeed needs the process group)."""
    section = cfg.actor if role == "actor" else cfg.critic if role.startswith("critic") else None
    return section is not None and (section.replicas > 1 or section.zero_stage is not None)


def workers_of(cfg: TrainConfig, role: str) -> list[str]:
    """The runtime names of ``role``'s processes: the role's own, or one per data-parallel worker."""
    if not in_group(cfg, role):
        return [role]
    return [worker_name(role, rank) for rank in range(replicas_of(cfg, role))]


def worker_device(device: str, rank: int, backend: str) -> str:
    """Data-parallel worker ``rank``'s device: on the ``local`` backend, the rank-th GPU from the
    role's (``cuda:k`` -> ``cuda:k+rank``); Ray gives each worker a GPU of its own, which it sees
    as the role's device; a CPU stays a CPU."""
    if backend == "ray" or not device.startswith("cuda"):
        return device
    index = int(device.partition(":")[2] or 0)
    return f"cuda:{index + rank}"


def ray_plan(cfg: TrainConfig, threads: dict[str, int | None], nice: dict[str, int]) -> RayPlan:
    """The ``ray`` backend's plan: the processes :func:`build_roles` spawns (a role's data-parallel
    workers each), each reserving a CPU per torch thread and, on a CUDA device, a GPU (Ray then
    shows it the role as ``cuda:0``)."""
    rt = cfg.runtime
    actor = rt.device_of("actor", cfg.actor.device)
    devices = {"reward": "cpu", "actor": actor}
    if cfg.algo.kl_coef > 0:
        devices["reference"] = rt.device_of("reference", actor)
    if cfg.algo.uses_critic:
        devices.update({f"critic{m}": rt.device_of(f"critic{m}", cfg.critic.device) for m in range(cfg.critic.count)})
    devices["rollout"] = rt.device_of("rollout", actor)
    roles = {
        worker: RoleResources(num_cpus=float(threads.get(worker) or 1), num_gpus=1.0 if device.startswith("cuda") else 0.0)
        for name, device in devices.items()
        for worker in workers_of(cfg, name)
    }
    return RayPlan(
        roles=roles,
        colocate=((workers_of(cfg, "actor")[0], "rollout"),) if rt.colocate_actor_rollout else (),
        strategy=rt.placement_strategy,
        address=rt.address,
        cpu_threads={name: threads.get(name) for name in roles},
        nice={name: nice.get(name, 0) for name in roles},
    )


def build_roles(cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase, actor_path: str) -> Roles:
    """Spawn reward, actor, reference (with a KL term), critics (when the algorithm uses them) and
    rollout roles on ``runtime.backend``, placed by ``runtime.placement``.

    Every role loads its own model from disk; the rollout takes the actor's weights once they are
    published (``Trainer``). The actor shares them ``live`` (its parameters are the buffer the
    rollout reads) for synchronous generation with the HF engine, else as ``snapshot`` copies.
    """
    torch.manual_seed(cfg.trainer.seed)
    runtime_cfg = cfg.runtime
    role_names = ["actor", "rollout", "reference", "reward", *(f"critic{m}" for m in range(cfg.critic.count))]
    roles_threads = {w: runtime_cfg.threads_of(name) for name in role_names for w in workers_of(cfg, name)}
    nice = {w: runtime_cfg.nice_of(name) for name in role_names for w in workers_of(cfg, name)}
    plan = ray_plan(cfg, roles_threads, nice) if runtime_cfg.backend == "ray" else None
    runtime = make_runtime(runtime_cfg.backend, cpu_threads=roles_threads, nice=nice, ray_plan=plan)
    try:
        if isinstance(runtime, RayRuntime) and runtime.node_of(workers_of(cfg, "actor")[0]) != runtime.node_of("rollout"):
            raise ValueError(
                "runtime: the ray backend placed the actor and the rollout on different nodes, which the "
                "published weights cannot cross (shared memory / CUDA IPC): set "
                "runtime.colocate_actor_rollout=true or runtime.placement_strategy=STRICT_PACK"
            )
        return _spawn_roles(cfg, runtime, tokenizer, actor_path)
    except BaseException:
        runtime.shutdown()  # no role outlives a failed start
        raise


def _spawn_roles(cfg: TrainConfig, runtime: Runtime, tokenizer: PreTrainedTokenizerBase, actor_path: str) -> Roles:
    runtime_cfg = cfg.runtime
    common = {"algo": cfg.algo, "pad_token_id": int(tokenizer.pad_token_id),
              "micro_batch_tokens": cfg.trainer.micro_batch_tokens,
              "reuse_prompt_prefix": cfg.trainer.reuse_prompt_prefix}
    actor_steps = cfg.trainer.steps * optimizer_steps_per_train_step(cfg)
    actor_device = runtime_cfg.device_of("actor", cfg.actor.device)
    actor_kwargs = dict(
        model=cfg.actor.model_copy(update={"path": actor_path, "device": actor_device}),
        mini_batch_size=cfg.trainer.mini_batch_size,
        ppo_epochs=cfg.trainer.ppo_epochs,
        temperature=cfg.rollout.log_prob_temperature,
        max_response_length=cfg.rollout.max_new_tokens,
        total_optimizer_steps=actor_steps,
        **common,
    )
    # Cheap checks and the reward (which imports user code) before any model weight is loaded.
    critic_path = ""
    if cfg.algo.uses_critic:
        critic_path = actor_path if cfg.critic.init_from_actor_layers else resolve(cfg.critic.path or "")
        if not cfg.critic.init_from_actor_layers:
            check_critic_vocabulary(tokenizer, critic_path)
    reward = runtime.spawn("reward", RewardRole, config=cfg.reward, tokenizer=tokenizer)
    # ZeRO moves the parameters into its own buffers: the rollout gets copies.
    live = cfg.rollout.max_staleness == 0 and cfg.rollout.engine == "hf" and cfg.actor.zero_stage is None
    actor = _spawn_workers(
        cfg, runtime, "actor", ActorRole, ACTOR_SPLIT,
        # Rank 0 publishes the weights for the rollout (the workers' weights are equal).
        lambda rank: {
            **actor_kwargs,
            "model": actor_kwargs["model"].model_copy(
                update={"device": worker_device(actor_device, rank, runtime_cfg.backend)}
            ),
            "weights_sharing": ("live" if live else "snapshot") if rank == 0 else None,
        },
    )
    reference = None
    if cfg.algo.kl_coef > 0:
        reference_model = cfg.actor.model_copy(update={
            "path": actor_path, "device": runtime_cfg.device_of("reference", actor_device)
        })
        reference = runtime.spawn("reference", ActorRole, trainable=False, **{**actor_kwargs, "model": reference_model})
    critics = []
    if cfg.algo.uses_critic:
        for m in range(cfg.critic.count):
            device = runtime_cfg.device_of(f"critic{m}", cfg.critic.device)
            critic_kwargs = dict(
                model_path=critic_path,
                ppo_epochs=cfg.trainer.ppo_epochs,
                total_optimizer_steps=cfg.trainer.steps * cfg.trainer.ppo_epochs,
                index=m,
                seed=cfg.trainer.seed + 1000 * (m + 1),
                **common,
            )
            critics.append(_spawn_workers(
                cfg, runtime, f"critic{m}", CriticRole, CRITIC_SPLIT,
                lambda rank, device=device, kw=critic_kwargs: {
                    **kw, "model": cfg.critic.model_copy(update={"device": worker_device(device, rank, runtime_cfg.backend)})
                },
            ))
    rollout = runtime.spawn(
        "rollout",
        RolloutRole,
        config=cfg.rollout,
        model_path=actor_path,
        device=runtime_cfg.device_of("rollout", actor_device),
        dtype=cfg.actor.dtype,
        attn_implementation=cfg.actor.attn_implementation,
        tokenizer=tokenizer,  # reads responses for rollout.stop (actor.tokenizer may be another directory)
        eos_token_id=stop_token_ids(tokenizer, actor_path),
        pad_token_id=int(tokenizer.pad_token_id),
        seed=cfg.trainer.seed,
        behavior_log_probs=cfg.rollout.max_staleness > 0,
        weights_from_actor=True,
        micro_batch_tokens=cfg.trainer.micro_batch_tokens,
        reuse_prompt_prefix=cfg.trainer.reuse_prompt_prefix,
    )
    runtime.wait_ready()
    for group in [actor, *critics]:
        if isinstance(group, ReplicaGroup):
            group.connect()
    reward.call("wait_ready").result()  # a user reward that cannot be imported fails here, not at step 1
    return Roles(runtime, rollout, actor, critics, reward, reference)


def _spawn_workers(
    cfg: TrainConfig,
    runtime: Runtime,
    role: str,
    role_cls: type,
    split: frozenset[str],
    kwargs_of: Callable[[int], dict[str, Any]],
) -> RoleHandle:
    """``role`` as one process, or as a :class:`ReplicaGroup` of data-parallel workers (connected
    once every role is built); worker ``rank`` is built with ``kwargs_of(rank)``."""
    if not in_group(cfg, role):
        return runtime.spawn(role, role_cls, **kwargs_of(0))
    workers = [runtime.spawn(name, role_cls, **kwargs_of(rank)) for rank, name in enumerate(workers_of(cfg, role))]
    return ReplicaGroup(role, workers, split=split)
