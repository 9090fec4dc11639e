"""What the trained roles (actor, critics) share: their optimisation (``roles.training``: plain
torch or DeepSpeed ZeRO), their checkpoint files, saved by their own process, and their place in a
data-parallel group (``roles.data_parallel``)."""

from __future__ import annotations

from pathlib import Path

import torch
from asyppo import checkpoint
from asyppo.config.schema import OptimConfig
from asyppo.trainer.guards import check_finite_modules
from asyppo.trainer.optim import build_optimizer
from asyppo.trainer.roles.data_parallel import DataParallel, rendezvous_address
from asyppo.trainer.roles.training import PlainTraining, Training


class TrainableRole:
    """A role holding ``model`` and its :class:`~asyppo.trainer.roles.training.Training`.

    Run as N data-parallel workers, every worker takes part in a save (ZeRO gathers the partitions)
    and rank 0 writes the whole state; every worker loads the same files, so a checkpoint resumes
    with any number of workers and any ZeRO stage.
    """

    model: torch.nn.Module
    device: str
    data_parallel: DataParallel
    training: Training
    zero_stage: int | None
    offload_optimizer: bool

    def _build_training(
        self, optim: OptimConfig, total_steps: int, *, zero_stage: int | None, offload_optimizer: bool
    ) -> None:
        """AdamW and its schedule on the trainable parameters; under ZeRO they go to DeepSpeed when
        the data-parallel group is joined (:meth:`join_data_parallel`)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer, scheduler = build_optimizer(params, optim, total_steps)
        self.training = PlainTraining(self.model, params, optimizer, scheduler, optim.grad_clip, self.data_parallel)
        self.zero_stage = zero_stage
        self.offload_optimizer = offload_optimizer

    def reuses_prompts_in_update(self, enabled: bool) -> bool:
        """Whether the update runs each distinct prompt of a micro-batch once (prompt-prefix reuse,
        ``trainer.model_input.prefix_outputs``), given ``trainer.reuse_prompt_prefix``: not under
        ZeRO, whose gradient hooks expect each parameter once per backward and whose passes run in
        lockstep, nor with gradient checkpointing, which turns the KV cache off in training."""
        checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in self.model.modules())
        return enabled and not self.training.collective and not checkpointing

    def save(self, directory: str | Path) -> None:
        """Write weights, optimizer, schedule and this process's RNG into ``directory`` (rank 0
        writes; ``checkpoint.save_state``; the driver publishes the step's checkpoint atomically)."""
        with self.training.full_weights():
            parts = self.training.checkpoint_parts(saving=True)
            if self.data_parallel.rank == 0:
                check_finite_modules({type(self).__name__: self.model})  # never a NaN in a checkpoint
                checkpoint.save_state(directory, **parts)

    def load(self, directory: str | Path) -> None:
        """Restore what :meth:`save` wrote (``checkpoint.load_state``)."""
        with self.training.full_weights(modify=True):
            checkpoint.load_state(directory, **self.training.checkpoint_parts(saving=False))
            self.training.loaded()

    def rendezvous_address(self) -> str:
        """Where this worker (rank 0 of a data-parallel group) hosts the group's rendezvous."""
        return rendezvous_address()

    def join_data_parallel(self, address: str, rank: int, world_size: int) -> None:
        """Enter the data-parallel group at ``address`` as ``rank`` of ``world_size``
        (:meth:`DataParallel.join`: rank 0's weights become everyone's), then hand the model and
        optimizer to DeepSpeed when the role trains under ZeRO."""
        self.data_parallel.join(address, rank, world_size, self.device, self.model)
        if self.zero_stage is not None:
            from asyppo.trainer.roles.zero import ZeroTraining

            assert isinstance(self.training, PlainTraining)
            self.training = ZeroTraining(
                self.training, stage=self.zero_stage, offload_optimizer=self.offload_optimizer, device=self.device
            )

    def close(self) -> None:
        """Leave the data-parallel group, if any."""
        self.data_parallel.close()
