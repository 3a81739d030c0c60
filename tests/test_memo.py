"""``bridge._http.memo.Memo``: made once per key, bounded."""

from __future__ import annotations

from bridge._http.memo import Memo


def test_each_key_is_made_once_and_memory_stays_bounded() -> None:
    made: list[int] = []

    def square(key: int) -> int:
        made.append(key)
        return key * key

    memo: Memo[int, int] = Memo(square, size=4)
    assert [memo[2], memo[2], memo[3]] == [4, 4, 9]
    assert made == [2, 3]
    for key in range(100):
        assert memo[key] == key * key
    assert len(memo) <= 4


def test_keys_keep_refuses_are_made_each_time_and_not_kept() -> None:
    made: list[str] = []

    def upper(key: str) -> str:
        made.append(key)
        return key.upper()

    memo: Memo[str, str] = Memo(upper, size=8, keep=lambda key: len(key) <= 3)
    assert [memo["abc"], memo["abc"], memo["long key"], memo["long key"]] == [
        "ABC",
        "ABC",
        "LONG KEY",
        "LONG KEY",
    ]
    assert made == ["abc", "long key", "long key"]
    assert list(memo) == ["abc"]
