"""ordered_map: results in input order, and a worker process that dies costs only the item that killed it."""
import os

from artsim.core.parallel import ordered_map


def double_or_die(number: int) -> int:
    if number in (3, 11):
        os._exit(1)  # as a segfault in a C decoder would: no exception, the process is gone
    return number * 2


def test_results_keep_input_order_across_workers():
    assert list(ordered_map(double_or_die, [0, 1, 2, 4, 5, 6], workers=2, on_crash=str, window_per_worker=2)) == [
        0,
        2,
        4,
        8,
        10,
        12,
    ]


def test_a_worker_crash_costs_only_the_item_that_caused_it():
    results = list(
        ordered_map(
            double_or_die, range(16), workers=2, on_crash=lambda item: f"crashed on {item}", window_per_worker=2
        )
    )
    assert results == [0, 2, 4, "crashed on 3", 8, 10, 12, 14, 16, 18, 20, "crashed on 11", 24, 26, 28, 30]
