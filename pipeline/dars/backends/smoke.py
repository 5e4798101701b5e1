"""A fixed group of work units for checking an engine by hand: five short prompts (word
problems, a near-duplicate whose prefix is shared, a code stub) and their seeded
requests. The scheduler tests (tests/test_scheduler.py) and the thread-count benchmark
(benchmarks/scheduler_threads.py) decode the same group, so the benchmark needs nothing
from the tests; benchmarks/sampling.py seeds its requests the same way."""

from __future__ import annotations

from dars.backends.base import GenRequest

PROMPTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nSolution:",
    "Question: Sara had 20 coins and lost 7. How many coins are left?\nSolution:",
    "Q: Sara had 20 coins and lost 7. How many coins are left?\nSolution:",
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    "Question: A box holds 6 eggs. How many eggs are in 3 boxes?\nSolution:",
]


def unit_reqs(
    v: int,
    prompt: str,
    n: int,
    *,
    max_tokens: int = 10,
    stop: tuple[str, ...] = ("\n\n",),
    temperature: float = 0.8,
) -> list[GenRequest]:
    """The `n` requests of one unit (query `q<v>`, variant `v`), seeded 1000 * v + i."""
    return [
        GenRequest(
            query_id=f"q{v}",
            variant_id=v,
            sample_id=i,
            seed=1000 * v + i,
            prompt=prompt,
            stop=stop,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=0.95,
        )
        for i in range(n)
    ]
