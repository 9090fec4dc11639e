"""A trained role under DeepSpeed ZeRO (``actor.zero_stage``, ``critic.zero_stage``).

The role's model, AdamW optimizer and schedule (``trainer.optim``) go to
``deepspeed.initialize`` once the role's data-parallel group exists (``roles.data_parallel``):
stage 1 partitions the optimizer states over the workers, 2 also the gradients, 3 also the
parameters (gathered layer by layer in each forward and backward); 0 is DeepSpeed's plain data
parallelism. ``offload_optimizer`` keeps the optimizer states (and its step) in CPU memory;
``bfloat16`` models train in bf16 with fp32 master weights.

What stays as without ZeRO:

* **the update**: each worker runs its token-balanced share of every mini-batch with the loss
  normalised by the whole mini-batch's counts; DeepSpeed averages gradients over the workers, so
  the loss is scaled by their number to sum them; the gradient accumulation boundary is the
  mini-batch's last micro-batch; clipping is DeepSpeed's (``gradient_clipping``); a non-finite
  gradient norm skips the step and the schedule, as ``optim.clip_and_step`` does (DeepSpeed's
  overflow check; checked here for stage 0);
* **lockstep**: ZeRO's collectives run inside forward and backward, so every worker runs as many
  micro-batches as the busiest one (:meth:`ZeroTraining.micro_batches`), padding with passes whose
  loss is zero;
* **the checkpoint**: the whole weights and a torch AdamW state dict (``exp_avg``,
  ``exp_avg_sq``, ``step`` per parameter) gathered from the partitions
  (``deepspeed.utils.safe_get_full_*``) and written by rank 0, the layout ``PlainTraining`` writes;
  loading scatters them back (``safe_set_full_*``, :meth:`ZeroTraining._set_full`). A ZeRO checkpoint therefore resumes with any
  number of workers, any stage, or without DeepSpeed, and the HF export is the one of every run.

DeepSpeed is the ``deepspeed`` extra. On a machine without CUDA it runs with ``DS_ACCELERATOR=cpu``
(set here when the role's device is the CPU and the variable is unset); its CPU communication op
is compiled on first use with ``ninja`` (installed with DeepSpeed, found next to the interpreter).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
from asyppo.trainer.roles.training import PlainTraining

#: DeepSpeed's optimizer-state keys of torch's AdamW, as in its state dict.
ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


def import_deepspeed(device: str) -> Any:
    """``deepspeed``, set up for ``device`` (module docstring); a clear error when not installed."""
    if not device.startswith("cuda"):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    bin_dir = os.path.dirname(sys.executable)  # where pip put ninja, for DeepSpeed's op builds
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    try:
        import deepspeed
    except ImportError as exc:
        raise ImportError(
            f"zero_stage needs DeepSpeed, which is not installed ({exc}): pip install 'asyppo[deepspeed]'"
        ) from None
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    return deepspeed


def deepspeed_config(stage: int, *, offload_optimizer: bool, grad_clip: float | None, dtype: torch.dtype) -> dict[str, Any]:
    """The DeepSpeed config of a role: its ZeRO stage, offload, clipping and precision; batch
    sizes are nominal (the role feeds micro-batches and marks the accumulation boundary itself)."""
    zero: dict[str, Any] = {"stage": stage}
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": grad_clip or 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == torch.bfloat16, "check_grad_overflow": True},
        "zero_allow_untested_optimizer": True,  # torch's AdamW, so the checkpoint is AdamW's
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**62,
        "wall_clock_breakdown": False,
    }


class ZeroTraining:
    """:class:`~asyppo.trainer.roles.training.Training` under DeepSpeed ZeRO (module docstring)."""

    collective = True

    def __init__(self, plain: PlainTraining, *, stage: int, offload_optimizer: bool, device: str) -> None:
        self.deepspeed = import_deepspeed(device)
        # What DeepSpeed's launcher would set: LOCAL_RANK picks the worker's accelerator.
        local_rank = int(device.partition(":")[2] or 0) if device.startswith("cuda") else dist.get_rank()
        os.environ.update(RANK=str(dist.get_rank()), WORLD_SIZE=str(dist.get_world_size()), LOCAL_RANK=str(local_rank))
        self.model = plain.model
        self.params = plain.params
        self.stage = stage
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        dtype = next(self.model.parameters()).dtype
        self.engine, self.optimizer, _, self.scheduler = self.deepspeed.initialize(
            model=self.model,
            optimizer=plain.optimizer,
            lr_scheduler=plain.scheduler,
            config=deepspeed_config(stage, offload_optimizer=offload_optimizer, grad_clip=plain.grad_clip, dtype=dtype),
            dist_init_required=False,
        )
        self.base_optimizer: torch.optim.Optimizer = getattr(self.optimizer, "optimizer", self.optimizer)

    # -- the update -------------------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, *, last: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last)
        self.engine.backward(loss * self.world_size, scale_wrt_gas=False)  # DeepSpeed averages: sum

    def step(self) -> float:
        if self.stage == 0:  # no ZeRO optimizer: its overflow check is ours to make
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, math.inf))  # measures, clips nothing
            if not math.isfinite(norm):
                self.optimizer.zero_grad(set_to_none=True)
                return norm
        self.engine.step()
        if not self.engine.was_step_applied():
            return math.inf
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else math.nan

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def micro_batches(self, n_local: int) -> int:
        count = torch.tensor([n_local], dtype=torch.int64)
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        return int(count.item())

    # -- checkpoints ------------------------------------------------------------------------------
    def full_weights(self, *, modify: bool = False) -> contextlib.AbstractContextManager[None]:
        params = list(self.model.parameters())
        return self.deepspeed.zero.GatheredParameters(params, modifier_rank=0 if modify else None)

    def checkpoint_parts(self, *, saving: bool) -> dict[str, Any]:
        return {
            "modules": {"model": _WholeWeights(self.model)},
            "optimizers": {"optimizer": _FullAdamState(self, gather=saving)},
            "schedulers": {"scheduler": self.scheduler},
        }

    def loaded(self) -> None:
        """The fp32 master weights (ZeRO's own copy) from the loaded module weights."""
        for p in self.params:
            self._set_full(p, p.data.float(), None)

    # -- optimizer state, whole -------------------------------------------------------------------
    def full_adam_state(self) -> dict[str, Any]:
        """The optimizer's state as torch's AdamW state dict of the role's parameters, gathered
        from the workers' partitions (collective: every worker calls it)."""
        from deepspeed.utils import safe_get_full_optimizer_state

        step = self._step_count()
        state: dict[int, dict[str, Any]] = {}
        for index, p in enumerate(self.params):
            moments = {key: safe_get_full_optimizer_state(p, key) for key in ADAM_MOMENTS}
            if all(m is not None for m in moments.values()):
                state[index] = {"step": torch.tensor(float(step)), **{k: m.cpu() for k, m in moments.items()}}
        group = {k: v for k, v in self.base_optimizer.param_groups[0].items() if k != "params"}
        return {"state": state, "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_full_adam_state(self, state_dict: dict[str, Any]) -> None:
        """Scatter a torch AdamW state dict (``full_adam_state``'s, or a run without ZeRO's) into
        the partitions, and take its learning rate (the schedule's state holds where it is, not the
        rate its last step set)."""
        for group, saved_group in zip(self.base_optimizer.param_groups, state_dict["param_groups"]):
            group["lr"] = saved_group["lr"]
        saved = state_dict["state"]
        if not saved:
            return
        self._create_state()
        for index, p in enumerate(self.params):
            entry = saved.get(index)
            if entry is None:
                continue
            for key in ADAM_MOMENTS:
                self._set_full(p, entry[key].float(), key)
        step = float(next(iter(saved.values()))["step"])
        for flat_state in self.base_optimizer.state.values():
            flat_state["step"].fill_(step)

    def _set_full(self, p: torch.nn.Parameter, value: torch.Tensor, key: str | None) -> None:
        """Set this worker's partition of ``p``'s fp32 master weights (``key`` None) or of its
        optimizer state ``key`` from the whole ``value``.

        ``deepspeed.utils.safe_set_full_*``, except on ZeRO-3, whose ``set_full_hp_param`` (DeepSpeed
        0.19) cuts the last partition of a parameter smaller than its padded partitions past the
        end of ``value`` (e.g. a critic's one-element bias over two workers): there the partition is
        written here, its padding zero.
        """
        if self.stage != 3:
            from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

            if key is None:
                safe_set_full_fp32_param(p, value)
            else:
                safe_set_full_optimizer_state(p, value, key)
            return
        partition, _ = self.optimizer._get_fp32_opt_state_partition(p, release_swap_buffers=False, optim_state_key=key)
        start = partition.numel() * self.optimizer._get_param_partition_rank(p)
        mine = value.flatten()[start : start + partition.numel()]
        partition.data.zero_()
        partition.data[: mine.numel()].copy_(mine)

    def _step_count(self) -> int:
        steps = [float(s["step"]) for s in self.base_optimizer.state.values() if "step" in s]
        return int(max(steps)) if steps else 0

    def _create_state(self) -> None:
        """AdamW's state of each fp32 partition, made as its first step would (it is made lazily),
        so that a resumed run's moments have somewhere to go."""
        flats = (
            getattr(self.optimizer, "fp32_partitioned_groups_flat", None)  # ZeRO-3
            or getattr(self.optimizer, "single_partition_of_fp32_groups", None)  # ZeRO-1 / 2
            or [p for group in self.base_optimizer.param_groups for p in group["params"]]  # stage 0
        )
        fused = bool(self.base_optimizer.defaults.get("fused"))
        for flat in flats:
            state = self.base_optimizer.state[flat]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32, device=flat.device if fused else "cpu")
                state["exp_avg"] = torch.zeros_like(flat, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(flat, memory_format=torch.preserve_format)


class _WholeWeights(torch.nn.Module):
    """The model as ``checkpoint.save_state`` / ``load_state`` see it under ZeRO: ZeRO keeps the
    weights as views of one flat buffer, which safetensors refuses to save, so the state dict
    holds copies (tied weights share one); loading copies into the model's own tensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self._model = [model]  # a list: not registered as a submodule, so not in our state dict

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        copies: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        out = {}
        for name, tensor in self._model[0].state_dict().items():
            key = (tensor.data_ptr(), tuple(tensor.shape))
            out[name] = copies.setdefault(key, tensor.detach().clone())
        return out

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self._model[0].load_state_dict(state_dict, strict=strict)

    def parameters(self, recurse: bool = True) -> Any:
        return self._model[0].parameters(recurse)


class _FullAdamState:
    """What ``checkpoint.save_state`` / ``load_state`` see as the optimizer: the whole AdamW state.

    Gathered when made for a save (a collective every worker joins, though only rank 0 writes)."""

    def __init__(self, training: ZeroTraining, *, gather: bool) -> None:
        self.training = training
        self.gathered = training.full_adam_state() if gather else None

    def state_dict(self) -> dict[str, Any]:
        assert self.gathered is not None, "made for loading"
        return self.gathered

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.training.load_full_adam_state(state_dict)

