"""A 50 MB prompt is rejected with bounded memory (it used to be tokenised whole, past 13 GB).

Measured in a fresh interpreter, so that the peak RSS (``ru_maxrss``) is this case's own and not
left over from earlier tests: the peak while loading the file and encoding it, minus the RSS
before, must stay under a bound generous enough for any allocator (the file itself is 50 MB and
is held about twice: the line read and the parsed string)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROMPT_BYTES = 50 * 1024 * 1024
BOUND_MB = 600

SCRIPT = """
import json, resource, sys
import psutil
from asyppo.data import PromptTooLongError, encode_prompts, load_prompts
from asyppo.toy.tokenizer import build_toy_tokenizer

tokenizer = build_toy_tokenizer()
before = psutil.Process().memory_info().rss
records = load_prompts(sys.argv[1])
try:
    encode_prompts(tokenizer, records, system_prompt=None, max_prompt_tokens=4096, what="data.train")
    message = None
except PromptTooLongError as exc:
    message = str(exc)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({"growth_mb": (peak - before) / 2**20, "message": message}))
"""


def test_a_50mb_prompt_is_rejected_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    with path.open("w") as f:
        f.write(json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n")
        f.write(json.dumps({"prompt": "7" * PROMPT_BYTES, "answer": "7"}) + "\n")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["message"] is not None, "the 50 MB prompt was accepted"
    assert f"1 of 2 prompts are longer than data.max_prompt_tokens=4096; the first is {path}:2" in result["message"]
    assert result["growth_mb"] < BOUND_MB, result
