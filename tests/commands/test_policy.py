"""The privacy floor, in one place."""

from __future__ import annotations

import pytest

from commands.policy import is_hidden, visible_size


@pytest.mark.parametrize(
    ("size", "floor", "hidden", "shown"),
    [(None, 10, False, None), (9, 10, True, None), (10, 10, False, 10), (0, 0, False, 0)],
)
def test_sizes_under_the_floor_are_hidden(size, floor, hidden, shown) -> None:
    assert is_hidden(size, floor) is hidden
    assert visible_size(size, floor) == shown
