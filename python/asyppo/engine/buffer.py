"""``TrajectoryBuffer``: the packed storage of one rollout batch.

Per sequence ``s`` it holds the prompt tokens, the response tokens and metadata (group id,
scalar reward, policy version); per *response* token it holds any number of named fields whose
last axis runs over the batch's ``T`` response tokens (``old_log_probs [T]``, per-critic
``values [M, T]``, ``advantages [T]``, ...). Response tokens are packed with ``offsets [N+1]``,
prompts with ``prompt_offsets [N+1]``. Every operation is vectorised numpy over whole arrays:
there is no Python loop over tokens.

Two padded layouts serve model input (``prompt_side``): ``"right"`` puts each row's prompt, then
its response, then padding; ``"left"`` left-pads the prompts to the longest prompt P and
right-pads the responses, so every response starts at column P and the outputs scoring response
token j of every row sit in the one column ``P-1+j`` (a contiguous slice; an LM head can skip the
prompt).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from asyppo.engine._convert import array, integer, like, real, to_numpy
from asyppo.engine.kernels import pack_microbatches


def offsets_from_lengths(lengths: Any) -> np.ndarray:
    """int64 ``[N+1]`` offsets ``[0, l0, l0+l1, ...]`` of a packed batch with these ``[N]`` lengths."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _gather_index(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token positions of sequences ``idx`` (in that order) and the offsets of the result."""
    lengths = np.diff(offsets)[idx]
    new = offsets_from_lengths(lengths)
    shift = np.repeat(offsets[:-1][idx] - new[:-1], lengths)
    return shift + np.arange(new[-1], dtype=np.int64), new


def _check_offsets(offsets: np.ndarray, n_tokens: int, name: str) -> None:
    if (
        len(offsets) == 0
        or offsets[0] != 0
        or offsets[-1] != n_tokens
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError(
            f"{name}: expected non-decreasing offsets from 0 to {n_tokens}, got {offsets}"
        )


PromptSide = Literal["right", "left"]


def _stored(name: str, doc: str) -> property:
    """A read-only view of a packed array that first folds pending appends in."""

    def get(self: TrajectoryBuffer) -> np.ndarray:
        self._flush()
        return self._data[name]

    return property(get, doc=doc)


class TrajectoryBuffer:
    """A rollout batch in packed form; build it with :meth:`from_packed` or :meth:`append`.

    Attributes (numpy): ``prompt_ids [P]`` and ``prompt_offsets [N+1]``; ``response_ids [T]`` and
    ``offsets [N+1]``; ``group_ids`` int64 ``[N]``, ``rewards`` float32 ``[N]``,
    ``policy_versions`` int64 ``[N]``. Token fields: ``buf[name]``, last axis ``T``.
    """

    def __init__(self) -> None:
        empty, start = np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
        self._data: dict[str, np.ndarray] = {
            "prompt_ids": empty,
            "prompt_offsets": start,
            "response_ids": empty,
            "offsets": start,
            "group_ids": empty,
            "rewards": np.zeros(0, dtype=np.float32),
            "policy_versions": empty,
        }
        self._fields: dict[str, np.ndarray] = {}
        self._pending: list[dict[str, Any]] = []

    prompt_ids = _stored("prompt_ids", "int64 ``[P]``: all prompt tokens, packed.")
    prompt_offsets = _stored(
        "prompt_offsets", "int64 ``[N+1]``: prompt boundaries in ``prompt_ids``."
    )
    response_ids = _stored("response_ids", "int64 ``[T]``: all response tokens, packed.")
    offsets = _stored("offsets", "int64 ``[N+1]``: response boundaries; indexes every token field.")
    group_ids = _stored("group_ids", "int64 ``[N]``: the prompt (group) each response answers.")
    rewards = _stored("rewards", "float32 ``[N]``: scalar reward per sequence.")
    policy_versions = _stored(
        "policy_versions", "int64 ``[N]``: version of the policy that sampled it."
    )

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_packed(
        cls,
        prompt_ids: Any,
        prompt_offsets: Any,
        response_ids: Any,
        offsets: Any,
        *,
        group_ids: Any,
        rewards: Any = None,
        policy_versions: Any = None,
        **token_fields: Any,
    ) -> TrajectoryBuffer:
        """A buffer over already-packed arrays (kept without copy when already int64 / float32)."""
        buf = cls()
        buf._data["prompt_ids"] = array(prompt_ids, "prompt_ids", "int")
        buf._data["prompt_offsets"] = array(prompt_offsets, "prompt_offsets", "int")
        buf._data["response_ids"] = array(response_ids, "response_ids", "int")
        buf._data["offsets"] = array(offsets, "offsets", "int")
        _check_offsets(buf._data["prompt_offsets"], len(buf._data["prompt_ids"]), "prompt_offsets")
        _check_offsets(buf._data["offsets"], len(buf._data["response_ids"]), "offsets")
        n = len(buf._data["offsets"]) - 1
        if len(buf._data["prompt_offsets"]) != n + 1:
            raise ValueError(
                f"prompt_offsets: expected length {n + 1} (as offsets), got {len(buf._data['prompt_offsets'])}"
            )
        buf._data["group_ids"] = buf._per_seq(group_ids, "group_ids", "int", n)
        buf._data["rewards"] = buf._per_seq(
            np.zeros(n, np.float32) if rewards is None else rewards, "rewards", "float", n
        )
        versions = np.zeros(n, np.int64) if policy_versions is None else policy_versions
        buf._data["policy_versions"] = buf._per_seq(versions, "policy_versions", "int", n)
        for name, value in token_fields.items():
            buf[name] = value
        return buf

    @staticmethod
    def _per_seq(x: Any, name: str, kind: str, n: int) -> np.ndarray:
        if kind == "float":  # scalar rewards may come as bools or ints; stored as float32
            k = to_numpy(x, name).dtype.kind
            a = array(x, name, "bool" if k == "b" else "int" if k in "iu" else "float")
            a = a.astype(np.float32, copy=False)
        else:
            a = array(x, name, "int")
        if len(a) != n:
            raise ValueError(f"{name}: expected length {n} (one per sequence), got {len(a)}")
        return a

    def append(
        self,
        prompt_ids: Any,
        response_ids: Any,
        *,
        group_id: int,
        reward: float = 0.0,
        policy_version: int = 0,
        **token_fields: Any,
    ) -> None:
        """Add one sequence. ``token_fields`` have last axis ``len(response_ids)``, and every
        sequence of the buffer must bring the same field names. Appends are batched: the packed
        arrays are rebuilt once, on the next read."""
        p = array(prompt_ids, "prompt_ids", "int")
        r = array(response_ids, "response_ids", "int")
        fields = {}
        for name, value in token_fields.items():
            a = to_numpy(value, name)
            if a.ndim == 0 or a.shape[-1] != len(r):
                raise ValueError(
                    f"{name}: expected last axis {len(r)} (response length), got shape {a.shape}"
                )
            fields[name] = a
        if self._pending:
            expected: set[str] | None = set(self._pending[0]["fields"])
        else:
            expected = set(self._fields) if len(self._data["offsets"]) > 1 else None
        if expected is not None and set(fields) != expected:
            raise ValueError(
                f"token_fields: expected {sorted(expected)} as for earlier sequences, got {sorted(fields)}"
            )
        self._pending.append(
            {
                "prompt": p,
                "response": r,
                "fields": fields,
                "group_id": integer(group_id, "group_id", -(2**63), 2**63 - 1),
                "reward": real(reward, "reward"),
                "policy_version": integer(policy_version, "policy_version", -(2**63), 2**63 - 1),
            }
        )

    def _flush(self) -> None:
        if not self._pending:
            return
        pend, self._pending = self._pending, []
        self._data["prompt_ids"] = np.concatenate(
            [self._data["prompt_ids"], *(p["prompt"] for p in pend)]
        )
        self._data["response_ids"] = np.concatenate(
            [self._data["response_ids"], *(p["response"] for p in pend)]
        )
        self._data["prompt_offsets"] = offsets_from_lengths(
            np.diff(self._data["prompt_offsets"]).tolist() + [len(p["prompt"]) for p in pend]
        )
        self._data["offsets"] = offsets_from_lengths(
            np.diff(self._data["offsets"]).tolist() + [len(p["response"]) for p in pend]
        )
        self._data["group_ids"] = np.concatenate(
            [self._data["group_ids"], np.array([p["group_id"] for p in pend], np.int64)]
        )
        self._data["rewards"] = np.concatenate(
            [self._data["rewards"], np.array([p["reward"] for p in pend], np.float32)]
        )
        versions = np.array([p["policy_version"] for p in pend], np.int64)
        self._data["policy_versions"] = np.concatenate([self._data["policy_versions"], versions])
        for name in pend[0]["fields"]:
            parts = [p["fields"][name] for p in pend]
            if name in self._fields:
                parts.insert(0, self._fields[name])
            self._fields[name] = np.concatenate(parts, axis=-1)

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        self._flush()
        return len(self._data["offsets"]) - 1

    @property
    def n_tokens(self) -> int:
        """Number of response tokens ``T``."""
        self._flush()
        return len(self._data["response_ids"])

    @property
    def prompt_lengths(self) -> np.ndarray:
        self._flush()
        return np.diff(self._data["prompt_offsets"])

    @property
    def response_lengths(self) -> np.ndarray:
        self._flush()
        return np.diff(self._data["offsets"])

    @property
    def fields(self) -> list[str]:
        """Names of the per-token fields."""
        self._flush()
        return list(self._fields)

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __getitem__(self, name: str) -> np.ndarray:
        self._flush()
        try:
            return self._fields[name]
        except KeyError:
            raise KeyError(f"{name!r}: no such token field (have {sorted(self._fields)})") from None

    def __setitem__(self, name: str, value: Any) -> None:
        """Set a per-token field (numpy or CPU torch; stored as numpy, shared when possible)."""
        self._flush()
        a = to_numpy(value, name)
        if a.ndim == 0 or a.shape[-1] != len(self._data["response_ids"]):
            raise ValueError(
                f"{name}: expected last axis {len(self._data['response_ids'])} (n_tokens), got shape {a.shape}"
            )
        self._fields[name] = a

    def token_rewards(self) -> np.ndarray:
        """float32 ``[T]``: the ``"token_rewards"`` field if set, else each sequence's scalar reward
        on its last response token and 0 elsewhere (sparse outcome reward; step 2 of ``docs/algorithm.md``)."""
        self._flush()
        if "token_rewards" in self._fields:
            return self._fields["token_rewards"]
        out = np.zeros(len(self._data["response_ids"]), dtype=np.float32)
        lengths = np.diff(self._data["offsets"])
        out[self._data["offsets"][1:][lengths > 0] - 1] = self._data["rewards"][lengths > 0]
        return out

    # -- selection and micro-batches --------------------------------------------------------------
    def _sequence_index(self, indices: Any) -> np.ndarray:
        """``indices`` checked against ``[-N, N)`` and wrapped to ``[0, N)``, int64."""
        n = len(self)
        idx = array(indices, "indices", "int")
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise ValueError(
                f"indices: expected values in [{-n}, {n}), got min {idx.min()}, max {idx.max()}"
            )
        return idx % max(n, 1)

    def token_index(self, indices: Any) -> np.ndarray:
        """int64 ``[T_sel]``: the token-axis positions of the response tokens of sequences
        ``indices``, in that order, i.e. what :meth:`select` gathers every token field with.

        Gathers an array packed like this buffer the way ``select`` would
        (``x[..., buf.token_index(idx)]``) and scatters values computed on ``buf.select(idx)``
        back into place (``out[..., buf.token_index(idx)] = y``).
        """
        self._flush()
        return _gather_index(self._data["offsets"], self._sequence_index(indices))[0]

    def select(self, indices: Any) -> TrajectoryBuffer:
        """A new buffer with the sequences ``indices`` in that order (a copy)."""
        idx = self._sequence_index(indices)
        tok, offsets = _gather_index(self._data["offsets"], idx)
        ptok, prompt_offsets = _gather_index(self._data["prompt_offsets"], idx)
        out = TrajectoryBuffer()
        out._data["prompt_ids"], out._data["prompt_offsets"] = (
            self._data["prompt_ids"][ptok],
            prompt_offsets,
        )
        out._data["response_ids"], out._data["offsets"] = self._data["response_ids"][tok], offsets
        out._data["group_ids"], out._data["rewards"] = (
            self._data["group_ids"][idx],
            self._data["rewards"][idx],
        )
        out._data["policy_versions"] = self._data["policy_versions"][idx]
        out._fields = {k: v[..., tok] for k, v in self._fields.items()}
        return out

    def microbatch_indices(
        self, max_tokens: int, *, padded: bool = True, prompt_side: PromptSide = "right"
    ) -> list[np.ndarray]:
        """Sequence indices of micro-batches whose prompt+response tokens fit ``max_tokens``
        (``pack_microbatches``). ``padded=True`` budgets the size of the padded input that
        :meth:`to_padded` builds in the ``prompt_side`` layout: ``count * longest prompt+response``
        (``"right"``) or ``count * (longest prompt + longest response)`` (``"left"``);
        ``padded=False`` budgets the tokens themselves. :meth:`select` gathers each; with
        :meth:`token_index` they place per-token results computed micro-batch by micro-batch back
        into packed order."""
        if prompt_side == "right":
            lengths = self.prompt_lengths + self.response_lengths
            return pack_microbatches(lengths, max_tokens, padded=padded)
        if prompt_side == "left":
            return pack_microbatches(
                self.response_lengths, max_tokens, padded=padded, prompt_lengths=self.prompt_lengths
            )
        raise ValueError(f"prompt_side: expected 'right' or 'left', got {prompt_side!r}")

    # -- padded model input -----------------------------------------------------------------------
    def masks(self, prompt_side: PromptSide = "right") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """bool ``[B, L]`` masks of prompt, response and all tokens for a padded layout.

        ``"right"``: row ``b`` = prompt ++ response ++ padding, ``L`` = longest prompt+response.
        ``"left"``: row ``b`` = padding ++ prompt | response ++ padding with the bar at column
        ``P`` = longest prompt, ``L = P + R`` with ``R`` = longest response.
        """
        plen, rlen = self.prompt_lengths, self.response_lengths
        if prompt_side == "right":
            total = plen + rlen
            cols = np.arange(int(total.max(initial=0)), dtype=np.int64)[None, :]
            prompt = cols < plen[:, None]
            valid = cols < total[:, None]
            return prompt, valid & ~prompt, valid
        if prompt_side == "left":
            width = int(plen.max(initial=0))
            cols = np.arange(width + int(rlen.max(initial=0)), dtype=np.int64)[None, :]
            prompt = (cols >= (width - plen)[:, None]) & (cols < width)
            response = (cols >= width) & (cols < (width + rlen)[:, None])
            return prompt, response, prompt | response
        raise ValueError(f"prompt_side: expected 'right' or 'left', got {prompt_side!r}")

    def to_padded(
        self,
        pad_id: int = 0,
        fields: list[str] | None = None,
        as_torch: bool = False,
        prompt_side: PromptSide = "right",
    ) -> dict[str, Any]:
        """Model input as padded ``[B, L]`` arrays in the ``prompt_side`` layout (:meth:`masks`).

        Returns ``input_ids`` (int64, tokens where :meth:`masks` has them, ``pad_id`` elsewhere),
        ``attention_mask`` (int64, 1 on prompt and response), ``position_ids`` (int64, the index
        of each token within its own prompt+response, so left padding does not shift it:
        ``max(cumsum(attention_mask) - 1, 0)`` along each row), ``response_mask`` (float32, 1 on
        response tokens), and each token field in ``fields`` (default: all) scattered to its
        response positions, 0 elsewhere (``[..., T] -> [..., B, L]``). The field value of response
        token ``t`` sits at the position of token ``t`` itself: the logits that predict it are at
        the position before. With ``as_torch`` the arrays are returned as CPU torch tensors
        sharing their memory.
        """
        self._flush()
        prompt, response, valid = self.masks(prompt_side)
        input_ids = np.full(
            valid.shape, integer(pad_id, "pad_id", -(2**63), 2**63 - 1), dtype=np.int64
        )
        input_ids[prompt] = self._data["prompt_ids"]
        input_ids[response] = self._data["response_ids"]
        out: dict[str, np.ndarray] = {
            "input_ids": input_ids,
            "attention_mask": valid.astype(np.int64),
            "position_ids": np.maximum(np.cumsum(valid, axis=1, dtype=np.int64) - 1, 0),
            "response_mask": response.astype(np.float32),
        }
        for name in self.fields if fields is None else fields:
            value = self[name]
            padded = np.zeros(value.shape[:-1] + valid.shape, dtype=value.dtype)
            padded[..., response] = value
            out[name] = padded
        return {k: like(v, as_torch) for k, v in out.items()}

    def __repr__(self) -> str:
        return f"TrajectoryBuffer(n_sequences={len(self)}, n_tokens={self.n_tokens}, fields={self.fields})"
