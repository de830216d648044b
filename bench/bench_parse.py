"""Parsing speed: 10,000 infotexts and 10,000 prompts, per-item time.

Items cycle through the corpus in `tests/data/` (infotexts.jsonl, civitai_meta.jsonl, prompts.jsonl), each one
made distinct by a counter so nothing could be served from a cache. Measured:

* infotexts: `parse_a1111`, `GenerationParams.from_infotext`, `to_infotext`; CivitAI meta: `from_civitai_meta`.
  Baseline in the same run: one `re.findall` of the documented key/value pattern over each parameter line, the
  least any infotext reader does. Goal: `from_infotext` under 100 us per infotext.
* prompts: `extract_extra_networks`, `parse_prompt_attention`, `prompt_schedules` (the corpus's step counts) and
  `split_and`, one after the other as the reproduce pipeline calls them. Goal: under 200 us per prompt.

Each timing is the best of `--repeats`, alternating the sides.

    .venv/bin/python bench/bench_parse.py [--count 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeldex.generator.infotext import parse_a1111
from modeldex.generator.params import GenerationParams
from modeldex.generator.prompt import (
    PromptSyntaxError,
    extract_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    split_and,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def load(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def best_of(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """The best time of each run, the runs alternated so machine noise hits them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="items of each kind (default 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    args = parser.parse_args()

    corpus = [e["text"] for e in load("infotexts.jsonl")]
    texts = [corpus[i % len(corpus)].replace("Seed: ", f"Seed: {i}", 1) for i in range(args.count)]
    last_lines = [t.strip().rsplit("\n", 1)[-1] for t in texts]
    metas = [e["meta"] for e in load("civitai_meta.jsonl") if not e.get("error")]
    metas = [metas[i % len(metas)] for i in range(args.count)]
    prompt_entries = [e for e in load("prompts.jsonl") if not e.get("error")]
    prompts = [
        (f"{e['prompt']}, tag{i}", int(e["steps"]))
        for i, e in enumerate(prompt_entries[i % len(prompt_entries)] for i in range(args.count))
    ]
    parsed = [GenerationParams.from_infotext(t) for t in texts]

    def baseline() -> None:
        for line in last_lines:
            PAIR.findall(line)

    def a1111() -> None:
        for text in texts:
            parse_a1111(text)

    def typed() -> None:
        for text in texts:
            GenerationParams.from_infotext(text)

    def write() -> None:
        for params in parsed:
            params.to_infotext()

    def meta() -> None:
        for m in metas:
            GenerationParams.from_civitai_meta(m)

    def prompt_pipeline() -> None:
        for prompt, steps in prompts:
            try:
                rest, _ = extract_extra_networks(prompt)
                for part, _weight in split_and(rest):
                    for _step, text in prompt_schedules(part, steps):
                        parse_prompt_attention(text)
            except PromptSyntaxError:
                continue

    times = best_of(args.repeats, baseline, a1111, typed, write, meta, prompt_pipeline)
    n = args.count
    per = [t / n * 1e6 for t in times]
    print(f"{n} items each, best of {args.repeats}")
    print(f"  baseline re.findall of the pair pattern   {per[0]:8.1f} us/infotext")
    print(f"  parse_a1111                               {per[1]:8.1f} us/infotext  ({per[1] / per[0]:.1f}x baseline)")
    print(f"  GenerationParams.from_infotext            {per[2]:8.1f} us/infotext  (goal < 100)")
    print(f"  GenerationParams.to_infotext              {per[3]:8.1f} us/infotext")
    print(f"  GenerationParams.from_civitai_meta        {per[4]:8.1f} us/meta")
    print(f"  prompt: networks, AND, schedule, weights  {per[5]:8.1f} us/prompt    (goal < 200)")


if __name__ == "__main__":
    main()
