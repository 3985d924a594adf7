"""Tests for trainer/embeddings/spec.py: the value checks every spec shares."""

import dataclasses
from typing import ClassVar

import pytest

from trainer.embeddings.spec import Spec
from trainer.embeddings.spec import SpecError
from trainer.embeddings.spec import Vocabulary
from trainer.embeddings.spec import rows_text


@dataclasses.dataclass
class _Example(Spec):
    type: ClassVar[str] = "example"

    size: int | None = None
    ratio: float = 2.0
    flag: bool = False
    widths: list[int] | None = None

    def validate(self, output_dim=None):
        self.check_int("size", 1, output_dim)
        self.check_number("ratio", 1)
        self.check_bool("flag")
        self.check_list("widths", lambda v: isinstance(v, int), "integers")
        self.check_exclusive("size", "widths")


@pytest.mark.parametrize(
    "options, output_dim, message",
    [
        ({"size": 0}, None, "size must be an integer >= 1 (or null), got 0"),
        ({"size": 9}, 8, "size must be an integer in [1, 8] (or null), got 9"),
        ({"ratio": 1}, None, "ratio must be a number > 1, got 1"),
        ({"ratio": None}, None, "ratio must be a number > 1, got null"),
        ({"flag": 1}, None, "flag must be true or false, got 1"),
        ({"widths": []}, None, "widths must be a non-empty list of integers (or null), got []"),
        ({"size": 2, "widths": [2]}, None, "size and widths are mutually exclusive"),
        ({"sise": 2}, None, "unknown key 'sise' for type example (known: size, ratio, flag, "),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key_and_what_it_allows(options, output_dim, message):
    with pytest.raises(SpecError) as caught:
        _Example.from_json(options, output_dim)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_null_is_allowed_only_where_the_default_is_null():
    assert _Example.from_json({"size": None, "widths": None}) == _Example()


def test_excluded_keys_are_unknown_where_the_spec_is_used():
    with pytest.raises(
        SpecError, match=r"unknown key 'flag' in the tail \(known: size, ratio, widths\)"
    ):
        _Example.from_json({"flag": True}, where="in the tail", exclude=("flag",))


def test_a_vocabulary_counts_its_oov_rows():
    vocab = Vocabulary.of([5, 3, 1], 2)
    assert (vocab.size, vocab.input_dim) == (3, 5)
    assert rows_text(vocab.input_dim, vocab.size) == "5 rows (3 ids + 2 OOV)"
    assert rows_text(1) == "1 row"
