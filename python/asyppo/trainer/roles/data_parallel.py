"""Data-parallel workers of a trained role (``actor.replicas``, ``critic.replicas``): the worker's side.

A role run as N workers is N processes of the same role class in one ``torch.distributed`` group
(gloo on CPU, NCCL on CUDA), seen by the loop as one handle (``asyppo.runtime.replicas``). The
N workers give the update one worker gives on the whole batch:

* every worker is handed the whole (mini-)batch and takes its share of the sequences
  (``runtime.replicas.shares``: token-balanced, the same deterministic split on every worker), so
  each runs about the same number of tokens;
* the loss of each micro-batch is normalised by the counts of the *whole* mini-batch
  (``LossNormalizer``'s global tokens / sequences), so the loss is a sum over sequences whose
  gradient is the sum of the workers' gradients; :meth:`DataParallel.sum_gradients` all-reduces
  them (SUM) before clipping, and every worker then takes the same optimizer step from the same
  gradient (the global gradient norm, the skip of a non-finite step and the schedule agree);
* the AsyPPO masks and percentiles are computed by the driver over the whole batch before the
  update (docs/algorithm.md, step 6), so they are global whatever the number of workers.

The no-grad passes (old log-probs, values) are split by the driver instead, which sends each worker
only its share. The workers' weights start equal: :meth:`DataParallel.join` broadcasts rank 0's
parameters and buffers.
"""

from __future__ import annotations

import datetime
import socket
import sys
from collections.abc import Iterable

import torch
import torch.distributed as dist
from asyppo.engine import TrajectoryBuffer
from asyppo.runtime.replicas import shares

#: Elements per all-reduce of the gradients: large enough to amortise a collective's latency,
#: small enough that the flattened copy stays a fraction of a large model's gradients.
BUCKET_ELEMENTS = 1 << 24
#: How long a collective waits for a worker that does not arrive (a dead worker fails the
#: call through the runtime long before).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def rendezvous_address() -> str:
    """``tcp://HOST:PORT`` for the group's rendezvous, hosted by the calling (rank 0) process: this
    node's address as the cluster sees it (Ray's node IP when inside a Ray worker, else loopback)
    and a port free at the moment of the call."""
    host = "127.0.0.1"
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            host = ray.util.get_node_ip_address()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    return f"tcp://{host}:{port}"


class DataParallel:
    """This worker's place in its role's group; one worker alone (rank 0 of 1) until :meth:`join`."""

    def __init__(self) -> None:
        self.rank = 0
        self.world_size = 1

    def join(self, address: str, rank: int, world_size: int, device: str, module: torch.nn.Module) -> None:
        """Enter the group at ``address`` (every worker calls this at once; it returns when all
        have), then take rank 0's parameters and buffers."""
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(
            backend, init_method=address, rank=rank, world_size=world_size, timeout=COLLECTIVE_TIMEOUT
        )
        self.rank, self.world_size = rank, world_size
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def share(self, batch: TrajectoryBuffer) -> TrajectoryBuffer:
        """This worker's token-balanced share of ``batch`` (all of it when alone)."""
        if self.world_size == 1:
            return batch
        return batch.select(shares(batch, self.world_size)[self.rank])

    def sum_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """All-reduce (SUM) the gradients of ``params`` over the workers, in flattened buckets; a
        parameter without a gradient on this worker (its share was empty) contributes zeros."""
        if self.world_size == 1:
            return
        params = list(params)
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[torch.Tensor] = []
        size = 0
        for p in params:
            bucket.append(p.grad)
            size += p.grad.numel()
            if size >= BUCKET_ELEMENTS:
                _all_reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            _all_reduce_bucket(bucket)

    def sum_over_workers(self, values: dict[str, float]) -> dict[str, float]:
        """Each key's sum over the workers (keys missing on a worker count 0); ``values`` when alone."""
        if self.world_size == 1:
            return values
        gathered: list[dict[str, float] | None] = [None] * self.world_size
        dist.all_gather_object(gathered, values)
        total: dict[str, float] = {}
        for worker_values in gathered:
            for key, value in (worker_values or {}).items():
                total[key] = total.get(key, 0.0) + value
        return total

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def _all_reduce_bucket(grads: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
