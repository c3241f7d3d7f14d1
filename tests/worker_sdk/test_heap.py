"""A settled process leaves its start-up objects out of collections, collects its young
generation less often, and still frees the reference cycles made afterwards."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import gc, weakref
from surefoot_worker import _heap

class Node:
    pass

before = gc.get_threshold()
_heap.settle()
frozen = gc.get_freeze_count()
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after start-up
gone = weakref.ref(a)
del a, b
gc.collect()
print(frozen > 1000, gc.get_threshold() == (_heap.YOUNG_THRESHOLD, *before[1:]), gone() is None)
"""


def test_settle_freezes_what_exists_and_later_cycles_are_still_freed() -> None:
    # In a process of its own: freezing the test runner's heap would outlive the test.
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "True", "True"], done.stderr
