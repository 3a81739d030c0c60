"""``bridge._memo.Memo``: made once per key, bounded."""

from __future__ import annotations

from bridge._memo import Memo


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
