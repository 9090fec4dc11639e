"""Specification of `load_prompts` and `split_train_eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asyppo.data import PromptRecord, load_prompts, split_train_eval

ROWS = [
    {"prompt": "1+1=", "answer": "2"},
    {"prompt": [{"role": "user", "content": "2+2="}], "answer": 4},
    {"prompt": "3+3=", "answer": "6", "extra": True},
]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "p.jsonl", [json.dumps(r) for r in ROWS])


def test_jsonl_rows_become_records_with_text_answers(jsonl: Path) -> None:
    records = load_prompts(jsonl)
    assert [r.answer for r in records] == ["2", "4", "6"]
    assert records[1].prompt == [{"role": "user", "content": "2+2="}]
    assert [r.index for r in records] == [0, 1, 2]
    assert records[2].source == f"{jsonl}:3"


def test_parquet_loads_the_same_records(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"q": "1+1=", "a": "2"}, {"q": "2+5=", "a": "7"}]), path)
    records = load_prompts(path, prompt_key="q", answer_key="a")
    assert [(r.prompt, r.answer) for r in records] == [("1+1=", "2"), ("2+5=", "7")]


def test_datasets_directory_loads(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list([{"question": "4+4=", "solution": "8"}]).save_to_disk(str(tmp_path / "ds"))
    (record,) = load_prompts(tmp_path / "ds", prompt_key="question", answer_key="solution")
    assert (record.prompt, record.answer) == ("4+4=", "8")


def test_datasets_dict_with_several_splits_asks_for_one(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    one = Dataset.from_list([{"prompt": "a", "answer": "b"}])
    DatasetDict({"train": one, "test": one}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match="splits test, train; point at one split"):
        load_prompts(tmp_path / "dd")


def test_blank_lines_are_skipped_but_keep_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ["", json.dumps(ROWS[0]), "", '{"prompt": "x"}'])
    with pytest.raises(ValueError, match=r"p\.jsonl:4: missing field 'answer'"):
        load_prompts(path)


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [json.dumps(ROWS[0]), json.dumps({"question": "1+1=", "answer": "2"})],
    )
    with pytest.raises(
        ValueError,
        match=r"bad\.jsonl:2: missing field 'prompt' \(fields present: 'question', 'answer'\)",
    ):
        load_prompts(path)


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps(ROWS[0]), "{not json"])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON"):
        load_prompts(path)


def test_bad_prompt_type_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps({"prompt": 5, "answer": "5"})])
    with pytest.raises(
        ValueError, match=r"bad\.jsonl:1: field 'prompt' must be a non-empty string"
    ):
        load_prompts(path)


def test_malformed_chat_message_is_named(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl", [json.dumps({"prompt": [{"role": "user"}], "answer": "1"})]
    )
    with pytest.raises(
        ValueError, match=r"bad\.jsonl:1: field 'prompt' message 0 must be an object"
    ):
        load_prompts(path)


def test_bad_parquet_row_names_row_number(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": None}]),
        path,
    )
    with pytest.raises(ValueError, match=r"p\.parquet row 1: field 'answer' is null"):
        load_prompts(path)


def test_unknown_suffix_and_missing_path_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("prompt,answer\n")
    with pytest.raises(ValueError, match="unknown format '.csv'"):
        load_prompts(tmp_path / "p.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_prompts(tmp_path / "absent.jsonl")


def records(n: int) -> list[PromptRecord]:
    return [PromptRecord(i, f"p{i}", str(i), f"mem:{i}") for i in range(n)]


def test_split_is_disjoint_covering_and_sized() -> None:
    train, held = split_train_eval(records(50), eval_size=10, seed=3)
    assert len(held) == 10 and len(train) == 40
    assert sorted(r.index for r in train + held) == list(range(50))


def test_split_is_seeded_and_keeps_order() -> None:
    a = split_train_eval(records(50), eval_size=0.2, seed=3)
    b = split_train_eval(records(50), eval_size=0.2, seed=3)
    c = split_train_eval(records(50), eval_size=0.2, seed=4)
    assert a == b and a != c
    assert [r.index for r in a[1]] == sorted(r.index for r in a[1])


def test_split_rejects_sizes_leaving_a_side_empty() -> None:
    with pytest.raises(ValueError, match="leaves no train or no eval"):
        split_train_eval(records(5), eval_size=5, seed=0)


def test_json_array_file_loads_and_names_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([ROWS[0], {"prompt": "x"}], indent=2))
    with pytest.raises(ValueError, match=r"p\.json row 1: missing field 'answer'"):
        load_prompts(path)
    path.write_text(json.dumps(ROWS, indent=2))
    assert [r.answer for r in load_prompts(path)] == ["2", "4", "6"]


def test_a_null_field_is_called_null_not_missing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "n.jsonl", [json.dumps(ROWS[0]), json.dumps({"prompt": "1+1=", "answer": None})])
    with pytest.raises(ValueError, match=r"^.*n\.jsonl:2: field 'answer' is null$"):
        load_prompts(path)


def test_non_utf8_jsonl_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b'\n{"prompt": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(ValueError, match=r"latin1\.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 16\)"):
        load_prompts(path)


def test_non_utf8_json_array_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[\n{"prompt": "1+1=", "answer": "2"},\n{"prompt": "\xff", "answer": "1"}\n]\n')
    with pytest.raises(ValueError, match=r"latin1\.json:3: not valid UTF-8 \(byte 0xff at column 13\)"):
        load_prompts(path)
