"""The AsyPPO training loop (Algorithm 1 of arXiv 2510.01656; docs/algorithm.md) over runtime roles.

One :meth:`Trainer.train_step`:

1. sample B prompts, generate G responses each (rollout role);
2. score them (reward role) and pack the batch as an ``engine.TrajectoryBuffer`` (scores in its
   ``rewards``); with DAPO dynamic sampling drop all-equal groups;
3. every critic evaluates every response token -> values ``[M, T]`` while the actor recomputes
   old log-probs (and the reference its log-probs when a KL term is on): all issued at once;
   per-token results become token fields of the buffer, so every selection of it carries its slice;
4. ``algos.compute_advantages``: GAE on the mean value, critic-std masks (or a group baseline);
5. deal each group's responses to the critics (``engine.shard_groups``); critic m regresses the
   returns of its shard only, with its own optimizer, while
6. (after ``critic.warmup_steps`` steps) the actor updates for ``ppo_epochs`` over mini-batches;
7. the actor publishes its weights; the rollout role takes them.

With ``rollout.max_staleness: 1`` the rollout generates the next step's batch (with the weights
it has) while this step scores and trains; the weights are published once that batch is done.
With the ``local`` backend the calls issued together run at the same time; results do not depend
on it (every role draws randomness from seeds the driver passes or its own seeded RNG).

Every phase is timed (``time/<phase>``, wall time in the driver; the roles add their own busy
time, ``time/actor_update`` and ``time/critic<m>_update``); tokens/s and peak memory are logged.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asyppo import checkpoint, data, engine, observability
from asyppo.algos import AdvantageBatch, compute_advantages, fold_kl_into_rewards
from asyppo.config.loader import dump_config
from asyppo.config.schema import TrainConfig
from asyppo.generation import GenerationOutput, SamplingParams
from asyppo.models import context_length, load_tokenizer, read_model_config
from asyppo.observability import PhaseTimer, StepProgress, peak_memory_metrics
from asyppo.runtime import gather
from asyppo.trainer.evaluate import evaluate
from asyppo.trainer.experience import informative_groups, rollout_buffer, shaped_scores
from asyppo.trainer.guards import NonFiniteGuard
from asyppo.trainer.resources import role_memory_metrics
from asyppo.trainer.run_dir import prepare_fresh_run_dir, truncate_metrics
from asyppo.trainer.setup import Roles, build_roles, configure_torch, load_datasets, resolve
from asyppo.trainer.signals import GracefulStop, TrainingInterrupted


def distribution(prefix: str, values: np.ndarray) -> dict[str, float]:
    """mean / p50 / p90 of ``values`` under ``prefix``."""
    if values.size == 0:
        return {}
    p50, p90 = np.percentile(values, [50, 90])
    return {f"{prefix}_mean": float(values.mean()), f"{prefix}_p50": float(p50), f"{prefix}_p90": float(p90)}


@dataclass
class PendingRollout:
    """A generation issued to the rollout role and not collected yet."""

    records: list[data.PromptRecord]
    prompt_ids: list[list[int]]
    future: Future[Any]
    policy_version: int
    sampler_state: dict[str, Any]  # the sampler before these prompts were drawn (checkpoints)
    waited: float = 0.0  # seconds the driver has spent on it so far (issuing it, waiting for it)


@dataclass
class RunResult:
    """What a finished run reports."""

    run_dir: Path
    steps: int
    start_accuracy: float | None
    end_accuracy: float | None
    seconds: float
    checkpoint: Path | None
    export: Path | None
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Owns the roles, the prompt sampler, the logger and the step counter of one run."""

    def __init__(
        self, cfg: TrainConfig, *, resume: str | Path | bool | None = None, overwrite: bool = False
    ) -> None:
        """``resume``: True (the latest checkpoint of ``trainer.output_dir``) or a run / checkpoint
        directory. A fresh run refuses an output directory that holds a run unless ``overwrite``
        (``trainer.run_dir``)."""
        self.cfg = cfg
        self.started = time.perf_counter()
        self.run_dir = Path(cfg.trainer.output_dir)
        if not resume:
            prepare_fresh_run_dir(self.run_dir, overwrite=overwrite)
        configure_torch(cfg)
        # Everything that can fail on user input fails here, before any weight is loaded.
        self.datasets = load_datasets(cfg)
        actor_path = resolve(cfg.actor.path or "")
        self.tokenizer = load_tokenizer(resolve(cfg.actor.tokenizer) if cfg.actor.tokenizer else actor_path)
        limit = data.prompt_token_limit(
            cfg.data.max_prompt_tokens,
            context_length=context_length(read_model_config(actor_path, what="actor.path")),
            max_new_tokens=cfg.rollout.max_new_tokens,
        )
        self.train_prompts = self._encode(self.datasets.train, limit, what=f"data.train ({cfg.data.train})")
        self.eval_prompts = self._encode(self.datasets.eval, limit, what=f"data.eval ({cfg.data.eval})")
        self.roles: Roles = build_roles(cfg, self.tokenizer, actor_path)
        self.sampler = data.PromptSampler(
            self.datasets.train, batch_size=cfg.rollout.prompts_per_step, seed=cfg.trainer.seed
        )
        self.step = 0
        self.eval_history: list[tuple[int, float]] = []
        self._warned: set[str] = set()
        self.pending: PendingRollout | None = None
        self.nonfinite = NonFiniteGuard(cfg.trainer.max_nonfinite_steps)
        self.policy_version = -1  # the weights version the rollout role holds
        if resume:
            self._resume(None if resume is True else Path(resume))
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
        self._sync_weights()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(dump_config(cfg))
        self.logger = observability.MetricsLogger(
            self.run_dir, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb_project
        )

    # -- data ------------------------------------------------------------------------------
    def _encode(self, records: list[data.PromptRecord], limit: int, *, what: str) -> dict[int, list[int]]:
        """Token ids of every record's rendered prompt, keyed by record index, prompts over
        ``limit`` tokens refused or dropped (``data.encode_prompts``, ``data.long_prompts``);
        ``records`` keeps only the kept ones (the sampler and eval draw from it)."""
        if not records:
            return {}
        encoded = data.encode_prompts(
            self.tokenizer, records, system_prompt=self.cfg.data.system_prompt, max_prompt_tokens=limit,
            chat_template=self.cfg.data.chat_template, long_prompts=self.cfg.data.long_prompts, what=what,
        )
        records[:] = encoded.records
        return encoded.token_ids

    @property
    def sampling(self) -> SamplingParams:
        r = self.cfg.rollout
        return SamplingParams(r.temperature, r.top_p, r.top_k, r.max_new_tokens, r.n, tuple(r.stop))

    # -- one step --------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """Run step ``self.step + 1`` (docs/algorithm.md) and return its metrics."""
        cfg, roles, timer = self.cfg, self.roles, PhaseTimer()
        started = time.perf_counter()
        seed = cfg.trainer.seed * 1_000_003 + self.step
        with timer.phase("generate"):
            rollout = self.pending or self._start_generation()
            self.pending = None
            out, generate_seconds = self._collect(rollout)
            if cfg.rollout.max_staleness and self.step + 1 < cfg.trainer.steps:
                self.pending = self._start_generation()  # generates while this batch trains
        records, prompt_ids = rollout.records, rollout.prompt_ids
        with timer.phase("reward"):
            answers = [records[i].answer for i in out.prompt_index]
            reward = roles.reward.call("score", out.token_ids, out.offsets, answers).result()
        self._warn_once(reward.unanswered_warning("a training batch"))
        scores, shaping = shaped_scores(reward.scores, out, cfg.reward, max_new_tokens=cfg.rollout.max_new_tokens)
        batch = rollout_buffer(prompt_ids, out, scores, policy_version=rollout.policy_version)
        if rollout.policy_version < self.step and out.log_probs is not None:
            batch["behavior_log_probs"] = out.log_probs  # generated by older weights: see _learn
        # reward/mean is the score trained on (after truncated_score and the overlong penalty);
        # accuracy the verifier's.
        metrics = {
            **reward.metrics(), **shaping, **self._response_metrics(out), "reward/mean": float(batch.rewards.mean()),
            "rollout/staleness_mean": float(self.step - rollout.policy_version),
        }
        if cfg.algo.dynamic_sampling:
            keep = informative_groups(batch.group_ids, batch.rewards)
            metrics["rollout/kept_frac"] = float(keep.mean())
            batch = batch.select(np.flatnonzero(keep))
        if len(batch) > 0 and batch.n_tokens > 0:
            metrics.update(self._learn(batch, seed, timer))
        with timer.phase("sync"):
            if self.pending is not None:  # the rollout aliases the published buffer: let it finish
                self._wait(self.pending)
            self.step += 1
            self._sync_weights()
        metrics.update(timer.metrics())
        metrics["time/generate_hidden"] = max(0.0, generate_seconds - rollout.waited)
        step_time = time.perf_counter() - started
        metrics["time/step"] = step_time
        tokens = out.offsets[-1] + sum(map(len, prompt_ids)) * self.cfg.rollout.n
        metrics["perf/tokens_per_s"] = float(tokens) / step_time
        metrics.update(peak_memory_metrics())
        metrics.update(role_memory_metrics(roles.runtime))
        return metrics

    def _start_generation(self) -> PendingRollout:
        """Draw the next prompts and issue their generation with the weights the rollout holds."""
        sampler_state = self.sampler.state_dict()
        records = next(self.sampler)
        prompt_ids = [self.train_prompts[r.index] for r in records]
        issued = time.perf_counter()
        future = self.roles.rollout.call("timed_generate", prompt_ids, self.sampling)
        # An in-process backend generates inside call(): that time is not hidden either.
        waited = time.perf_counter() - issued
        return PendingRollout(records, prompt_ids, future, self.policy_version, sampler_state, waited)

    @staticmethod
    def _wait(rollout: PendingRollout) -> None:
        started = time.perf_counter()
        rollout.future.exception()  # blocks until done; a failure is raised by _collect
        rollout.waited += time.perf_counter() - started

    def _collect(self, rollout: PendingRollout) -> tuple[GenerationOutput, float]:
        """The generated batch and the seconds generation took in the rollout role."""
        self._wait(rollout)
        out, seconds = rollout.future.result()
        return out, float(seconds)

    def _sync_weights(self) -> None:
        """The actor publishes version ``self.step`` of its weights; the rollout takes them."""
        handle = self.roles.actor.call("publish_weights").result()
        self.roles.rollout.call("load_weights", handle).result()
        self.policy_version = self.step

    @staticmethod
    def _response_metrics(out: GenerationOutput) -> dict[str, float]:
        return {
            "response/length_mean": float(out.lengths.mean()),
            "response/length_max": float(out.lengths.max()),
            "response/truncated_frac": float(1.0 - out.finished.mean()),
        }

    def _learn(self, batch: engine.TrajectoryBuffer, seed: int, timer: PhaseTimer) -> dict[str, float]:
        """Values, old log-probs, advantages, critic and actor updates on ``batch`` (docs/algorithm.md, steps 4-8).

        Per-token results become token fields of ``batch`` (``old_log_probs``, ``ref_log_probs``,
        ``values [M, T]``, ``advantages``, ``returns``, ``adv_keep``, ``ent_keep``), so that every
        selection of it (critic shards, mini-batches, micro-batches) carries its own slice.
        """
        cfg, roles = self.cfg, self.roles
        metrics: dict[str, float] = {}
        with timer.phase("values"):
            # Issue every critic's pass before collecting: parallel backends overlap them.
            value_calls = [c.call("values", batch) for c in roles.critics]
            # Stale data (rollout.max_staleness: 1) brings the log-probs of the policy that sampled
            # it: the PPO ratio is taken against those, so the current policy's are not recomputed.
            stale = "behavior_log_probs" in batch
            old_call = None if stale else roles.actor.call("log_probs", batch)
            ref_call = roles.reference.call("log_probs", batch) if roles.reference else None
            values = np.stack(gather(value_calls)) if roles.critics else None
            old_log_probs = batch["behavior_log_probs"] if old_call is None else old_call.result()
            ref_log_probs = ref_call.result() if ref_call else None
        with timer.phase("advantages"):
            token_rewards = batch.token_rewards()
            if ref_log_probs is not None and cfg.algo.kl_mode == "reward":
                token_rewards = fold_kl_into_rewards(
                    token_rewards, old_log_probs, ref_log_probs, kl_coef=cfg.algo.kl_coef, kind=cfg.algo.kl_estimator
                )
            adv = compute_advantages(
                AdvantageBatch(batch.offsets, token_rewards, batch.rewards, batch.group_ids, values), cfg.algo, seed=seed
            )
        metrics.update(self._advantage_metrics(adv))
        per_token = {
            "old_log_probs": old_log_probs, "ref_log_probs": ref_log_probs, "values": values,
            "advantages": adv.advantages, "returns": adv.returns, "adv_keep": adv.adv_keep, "ent_keep": adv.ent_keep,
        }
        for name, value in per_token.items():
            if value is not None:
                batch[name] = value
        with timer.phase("update"):
            # Critics need only the returns: their updates run while the actor updates.
            calls = []
            if roles.critics:
                shards = engine.shard_groups(batch.group_ids, len(roles.critics), seed, mode=cfg.critic.data)
                calls = [
                    critic.call("update", batch.select(np.flatnonzero(shards[m])))
                    for m, critic in enumerate(roles.critics)
                ]
            if self.step >= cfg.critic.warmup_steps or not roles.critics:
                calls.append(roles.actor.call("update", batch, seed=seed))
            for result in gather(calls):
                metrics.update(result)
        return metrics

    @staticmethod
    def _advantage_metrics(adv: Any) -> dict[str, float]:
        metrics = {"advantage/mean": float(np.mean(adv.advantages)), "advantage/std": float(np.std(adv.advantages))}
        if adv.value_std is not None:
            metrics.update(distribution("value/std", np.asarray(adv.value_std)))
        if adv.values is not None:
            metrics["value/mean"] = float(np.mean(adv.values))
        if adv.adv_keep is not None:
            metrics["mask/adv_masked_frac"] = float(1.0 - np.mean(adv.adv_keep))
        if adv.ent_keep is not None:
            metrics["mask/ent_filtered_frac"] = float(1.0 - np.mean(adv.ent_keep))
        return metrics

    # -- evaluation, checkpoints -----------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Held-out metrics now; the sample responses are logged and shown (``logging.eval_samples``)."""
        cfg = self.cfg
        ids = [self.eval_prompts[r.index] for r in self.datasets.eval]
        answers = [r.answer for r in self.datasets.eval]
        result = evaluate(
            self.roles.rollout, self.roles.reward, ids, answers,
            max_new_tokens=cfg.rollout.max_new_tokens, k=cfg.trainer.eval_k, temperature=cfg.trainer.eval_temperature,
            samples=cfg.logging.eval_samples, stop=cfg.rollout.stop,
        )
        self._warn_once(result.warning)
        if result.samples:
            self.logger.log_samples(self.step, result.samples)
            if cfg.logging.console_every:
                observability.print_samples(self.step, result.samples)
        if "eval/accuracy" in result.metrics:
            self.eval_history.append((self.step, result.metrics["eval/accuracy"]))
        return result.metrics

    def _warn_once(self, warning: str | None) -> None:
        """Print ``warning`` (to stderr) the first time it is raised in this process."""
        if warning is not None and warning not in self._warned:
            self._warned.add(warning)
            print(f"warning: {warning}", file=sys.stderr, flush=True)

    def _stateful_roles(self) -> list[Any]:
        """Roles with checkpoint state, the rollout last: in the inline backend every role
        restores the one process RNG, and only generation draws from it."""
        return [self.roles.actor, *self.roles.critics, self.roles.rollout]

    def save(self) -> Path:
        """Checkpoint ``step_<step>``: every role writes its own state into the step's temporary
        directory (at the same time), then the driver adds its state and publishes atomically."""
        sampler = self.pending.sampler_state if self.pending else self.sampler.state_dict()
        state = {
            "step": self.step, "sampler": sampler, "eval_history": self.eval_history,
            "nonfinite": self.nonfinite.state_dict(),
        }

        def write(directory: Path) -> None:
            gather([role.call("save", str(directory / role.name)) for role in self._stateful_roles()])

        return checkpoint.publish_checkpoint(self.run_dir / "checkpoints", self.step, write=write, state=state)

    def _resume(self, path: Path | None) -> None:
        """Restore every role and the driver from ``path`` (a step directory) or from the newest
        checkpoint of a run directory (default: this run's) that loads: a corrupt newest one is
        reported by name and the previous complete one is used."""
        path = path or self.run_dir
        if checkpoint.is_checkpoint(path):
            candidates = [path]
        else:
            root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
            checkpoint.clean_leftovers(root)
            candidates = checkpoint.complete_checkpoints(root)
            if not candidates:
                raise FileNotFoundError(f"--resume: no checkpoint under {root}")
        for i, candidate in enumerate(candidates):
            try:
                state = checkpoint.read_state(candidate)
                for role in self._stateful_roles():  # in order: see _stateful_roles
                    role.call("load", str(candidate / role.name)).result()
            except Exception as exc:  # any unreadable part: report it, try the previous one
                if i + 1 == len(candidates):
                    raise
                print(f"warning: checkpoint {candidate} cannot be loaded ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}); using {candidates[i + 1]}", file=sys.stderr)
                continue
            break
        self.step = int(state["step"])
        self.sampler.load_state_dict(state["sampler"])
        self.eval_history = [(int(s), float(a)) for s, a in state.get("eval_history", [])]
        if "nonfinite" in state:
            self.nonfinite.load_state_dict(state["nonfinite"])

    # -- the run ---------------------------------------------------------------------------
    def run(self, *, stop_after: int | None = None) -> RunResult:
        """Train to ``trainer.steps`` (or ``stop_after`` steps, for tests), evaluating and saving."""
        cfg = self.cfg.trainer
        target = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
        history: list[dict[str, float]] = []
        if self.step == 0 and cfg.eval_at_start and self.eval_prompts:
            start_eval = self.evaluate()
            self.logger.log(0, start_eval)
        bar = StepProgress(target, initial=self.step, enabled=self.cfg.logging.progress_bar)
        last_checkpoint = None
        try:
            with GracefulStop() as stop:
                while self.step < target:
                    metrics = self.train_step()
                    self.nonfinite.check(self.step, metrics)  # raises before a checkpoint of NaNs
                    final = self.step == cfg.steps
                    if self.eval_prompts and (final or (cfg.eval_every and self.step % cfg.eval_every == 0)):
                        metrics.update(self.evaluate())
                    self.logger.log(self.step, metrics)
                    history.append({"step": float(self.step), **metrics})
                    every = self.cfg.logging.console_every
                    if every and self.step % every == 0:
                        bar.print(observability.format_step_line(self.step, metrics))
                    bar.advance()
                    if stop.requested is not None:
                        self.logger.close()
                        raise TrainingInterrupted(stop.requested, self.step, self.save())
                    if cfg.save_every and self.step % cfg.save_every == 0 and not final:
                        last_checkpoint = self.save()
        finally:
            bar.close()
        export = None
        if self.step == cfg.steps:
            last_checkpoint = self.save()
            if cfg.export_hf:
                out_dir = str(self.run_dir / "hf_export")
                export = Path(self.roles.actor.call("export_hf", out_dir, self.tokenizer).result())
        self.logger.close()
        result = RunResult(
            run_dir=self.run_dir,
            steps=self.step,
            start_accuracy=self.eval_history[0][1] if self.eval_history else None,
            end_accuracy=self.eval_history[-1][1] if self.eval_history else None,
            seconds=time.perf_counter() - self.started,
            checkpoint=last_checkpoint,
            export=export,
            history=history,
        )
        (self.run_dir / "summary.json").write_text(json.dumps({
            "steps": result.steps, "start_accuracy": result.start_accuracy, "end_accuracy": result.end_accuracy,
            "seconds": result.seconds, "checkpoint": str(last_checkpoint), "export": str(export),
        }, indent=2))
        return result

    def close(self) -> None:
        self.roles.runtime.shutdown()
