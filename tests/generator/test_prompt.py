"""A1111 prompt syntax: attention weights, prompt editing schedules, extra-network tags, AND sub-prompts.

Expected values are A1111's documented behaviour (the doctests of modules/prompt_parser.py, the schedule example
in its header comment) and what its code does on the cases its docs leave out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from modeldex.errors import GenerationError
from modeldex.generator.prompt import (
    ExtraNetwork,
    PromptSyntaxError,
    extract_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    split_and,
)
from modeldex.generator.prompt_editing import MAX_NESTING

DATA = Path(__file__).parent.parent / "data"


# -- attention ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
    ],
)
def test_attention_matches_a1111_doctests(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(text) == expected


def test_square_brackets_divide_by_1_1_and_nest() -> None:
    assert parse_prompt_attention("[a] [[b]]") == [("a", 1 / 1.1), (" ", 1.0), ("b", (1 / 1.1) * (1 / 1.1))]


def test_explicit_weight_allows_spaces_and_signs() -> None:
    assert parse_prompt_attention("(a: 1.5 )(b:-0.5)") == [("a", 1.5), ("b", -0.5)]


def test_weight_without_open_bracket_is_plain_text() -> None:
    assert parse_prompt_attention("a:1.2) b") == [("a:1.2) b", 1.0)]


def test_escaped_backslash_and_lone_backslash() -> None:
    assert parse_prompt_attention("a\\\\b") == [("a\\b", 1.0)]
    assert parse_prompt_attention("a\\b") == [("ab", 1.0)]  # A1111 drops a backslash that escapes nothing


def test_break_becomes_a_marker_and_eats_surrounding_spaces() -> None:
    assert parse_prompt_attention("red hair  BREAK\ngreen eyes") == [
        ("red hair", 1.0),
        ("BREAK", -1.0),
        ("green eyes", 1.0),
    ]
    assert parse_prompt_attention("BREAKING news") == [("BREAKING news", 1.0)]


def test_break_inside_brackets_is_weighted_like_a1111() -> None:
    # A1111 scales the marker too; only an exact -1 starts a new chunk when it tokenizes.
    assert parse_prompt_attention("(a BREAK b:1.2)") == [("a", 1.2), ("BREAK", -1.2), ("b", 1.2)]


def test_identical_weights_merge_and_empty_prompt() -> None:
    assert parse_prompt_attention("[(balanced)] text") == [("balanced text", 1.0)]
    assert parse_prompt_attention("") == [("", 1.0)]


@pytest.mark.parametrize("text", ["(photo:1.2.3)", "(x:.)", "(x:+.)"])
def test_malformed_weight_raises_like_a1111(text: str) -> None:
    with pytest.raises(PromptSyntaxError) as info:
        parse_prompt_attention(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, GenerationError)
    assert "is not a number" in str(info.value)


def test_many_unclosed_brackets_stay_fast_and_exact() -> None:
    text = "(a" * 5000
    start = time.perf_counter()
    result = parse_prompt_attention(text)
    assert time.perf_counter() - start < 2.0
    expected_last = 1.0
    for _ in range(5000):
        expected_last *= 1.1
    assert result[-1] == ("a", expected_last)
    assert len(result) == 5000


# -- prompt editing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("test", [(10, "test")]),
        ("a [b:3]", [(3, "a "), (10, "a b")]),
        ("a [b: 3]", [(3, "a "), (10, "a b")]),
        ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
        ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
        ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
        ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
        ("a [unbalanced", [(10, "a [unbalanced")]),
        ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
        ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
        ("[a|(b:1.1)]", [(s, "a" if s % 2 else "(b:1.1)") for s in range(1, 11)]),
        ("[fe|]male", [(s, "female" if s % 2 else "male") for s in range(1, 11)]),
        ("[fe|||]male", [(s, "female" if s % 4 == 1 else "male") for s in range(1, 11)]),
    ],
)
def test_schedules_match_a1111_doctests(text: str, expected: list[tuple[int, str]]) -> None:
    assert prompt_schedules(text, 10) == expected


def test_schedule_example_from_a1111_header() -> None:
    text = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
        "[ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]"
    )
    assert prompt_schedules(text, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_doctest_that_a1111s_parser_does_not_honour() -> None:
    # A1111's docstring claims a schedule here, but its grammar has no place for a bare `|` (lark 1.1.2, the
    # version A1111 pins, rejects the prompt), so A1111 uses the prompt as it is.
    assert prompt_schedules("a [{b|d{:.5] c", 10) == [(10, "a [{b|d{:.5] c")]


def test_hires_pass_schedules_like_a1111() -> None:
    # Integers count on from the first pass's steps, numbers with a point from 1.0.
    assert prompt_schedules("a [b:.5] c", 10, hires_steps=10) == [(10, "a b c")]
    assert prompt_schedules("a [b:1.5] c", 10, hires_steps=10) == [(5, "a  c"), (10, "a b c")]
    assert prompt_schedules("a [b:13] c", 10, hires_steps=10) == [(3, "a  c"), (10, "a b c")]


def test_old_prompt_editing_timelines() -> None:
    # Before A1111 1.6 any `when` below 1 was a fraction, a decimal point or not; now the point decides.
    assert prompt_schedules("[a:b:0.5]", 20, old_timelines=True) == [(10, "a"), (20, "b")]
    assert prompt_schedules("[a:b:1.0]", 20, old_timelines=True) == [(1, "a"), (20, "b")]
    assert prompt_schedules("[a:b:1.0]", 20) == [(20, "a")]


def test_step_numbers_past_the_end_are_capped() -> None:
    assert prompt_schedules("[a:b:99]", 20) == [(20, "a")]
    assert prompt_schedules("[a:b:1e999]", 20) == [(20, "a")]  # A1111 crashes on int(inf)
    assert prompt_schedules("[a:b:-3]", 20) == [(20, "b")]


@pytest.mark.parametrize("text", ["a | b", "(a|b)", "trailing backslash \\", "[a:b:c:3]"])
def test_outside_the_grammar_the_prompt_is_used_unchanged(text: str) -> None:
    assert prompt_schedules(text, 8) == [(8, text)]


def test_escapes_are_kept_in_scheduled_text() -> None:
    assert prompt_schedules("\\[x\\] [a:b:2]", 4) == [(2, "\\[x\\] a"), (4, "\\[x\\] b")]
    assert prompt_schedules("\\[a:b:2]", 4) == [(4, "\\[a:b:2]")]


def test_a1111_ambiguity_gets_one_of_its_answers() -> None:
    # A1111's Earley parser resolves these ties differently from one process to another (Python's hash seed):
    # either the bracket before the literal `:` closes `[a:2]`, or it is literal too. Here it closes.
    assert prompt_schedules("[[a:2]:3", 10) == [(2, "[:3"), (10, "[a:3")]
    assert prompt_schedules("[a:(x:1.2):3]:3]", 10) == [(3, "a:3]"), (10, "(x:1.2):3]")]
    # Not a tie for A1111: a closing bracket followed by text closes its construct.
    assert prompt_schedules("[[a:2]x", 10) == [(2, "[x"), (10, "[ax")]


def test_deep_nesting_is_unscheduled_not_a_crash() -> None:
    deep = "[" * (MAX_NESTING + 5) + "a:1" + "]" * (MAX_NESTING + 5)
    assert prompt_schedules(deep, 10) == [(10, deep)]
    hostile = "[(" * 20000
    start = time.perf_counter()
    assert prompt_schedules(hostile, 10) == [(10, hostile)]
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("steps", [0, -1])
def test_steps_must_be_positive(steps: int) -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        prompt_schedules("a", steps)


# -- extra networks ----------------------------------------------------------------------------------------------


def test_lora_tags_are_removed_and_read() -> None:
    text, networks = extract_extra_networks("1girl, <lora:add_detail:0.6>, smile <lora:style:0.8:0.4>")
    assert text == "1girl, , smile "
    assert [(n.kind, n.name, n.te_multiplier, n.unet_multiplier, n.dyn_dim) for n in networks] == [
        ("lora", "add_detail", 0.6, 0.6, None),
        ("lora", "style", 0.8, 0.4, None),
    ]
    assert networks[0].tag == "<lora:add_detail:0.6>" and networks[0].weight == 0.6


def test_lora_named_arguments_override_positional_ones() -> None:
    _, [network] = extract_extra_networks("<lora:x:0.1:te=0.5:unet=1.2:dyn=16>")
    assert (network.te_multiplier, network.unet_multiplier, network.dyn_dim) == (0.5, 1.2, 16)
    assert network.args == ("x", "0.1", "te=0.5", "unet=1.2", "dyn=16")


def test_lora_defaults_lyco_alias_and_hypernet() -> None:
    _, networks = extract_extra_networks("<lora:plain><lyco:locon_style:0.7><hypernet:van_gogh:0.6><hypernet:hn>")
    assert [(n.kind, n.name, n.te_multiplier, n.unet_multiplier) for n in networks] == [
        ("lora", "plain", 1.0, 1.0),
        ("lyco", "locon_style", 0.7, 0.7),
        ("hypernet", "van_gogh", 0.6, 0.6),
        ("hypernet", "hn", 1.0, 1.0),
    ]


def test_unknown_tags_are_removed_too_and_other_extension_arguments_kept() -> None:
    text, networks = extract_extra_networks("a <wildcard:animals> b <lora:map:0.9:lbw=1,0,1>")
    assert text == "a  b "
    assert networks[0] == ExtraNetwork("wildcard", "animals", ("animals",), None, None, None, "<wildcard:animals>")
    assert networks[1].args == ("map", "0.9", "lbw=1,0,1") and networks[1].te_multiplier == 0.9


def test_things_that_are_not_tags_stay() -> None:
    for text in ["<lora:>", "a < b > c", "<:x>", "no tags", "<lora x:1>"]:
        assert extract_extra_networks(text) == (text, [])


@pytest.mark.parametrize("text", ["<lora:x:strong>", "<lora:te=1>", "<lora:x:1:1:big>", "<hypernet:h:lots>"])
def test_unreadable_weights_raise(text: str) -> None:
    with pytest.raises(PromptSyntaxError):
        extract_extra_networks(text)


def test_extract_is_linear_on_unclosed_angle_brackets() -> None:
    text = "<wc:" * 50000 + "> tail" + "<wc:" * 50000
    start = time.perf_counter()
    rest, networks = extract_extra_networks(text)
    assert time.perf_counter() - start < 2.0
    assert rest == " tail" + "<wc:" * 50000
    assert len(networks) == 1 and networks[0].kind == "wc"


def test_error_messages_stay_short_for_huge_tags() -> None:
    with pytest.raises(PromptSyntaxError) as info:
        extract_extra_networks("<lora:x:" + "9" * 10000 + "q>")
    assert len(str(info.value)) < 300


# -- AND ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a red car", [("a red car", 1.0)]),
        ("a AND b:0.5", [("a", 1.0), (" b", 0.5)]),
        ("sunny beach : 1.2 AND stormy sea : -0.5 ", [("sunny beach", 1.2), (" stormy sea", -0.5)]),
        ("ANDROID AND BRAND", [("ANDROID", 1.0), (" BRAND", 1.0)]),
        ("ratio 16:9", [("ratio 16", 9.0)]),
        ("time 12:30:x", [("time 12:30:x", 1.0)]),
        ("a:.5 AND b:2.", [("a", 0.5), (" b", 2.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_split_and(text: str, expected: list[tuple[str, float]]) -> None:
    assert split_and(text) == expected


# -- corpus ------------------------------------------------------------------------------------------------------


def _prompt_corpus() -> list[dict[str, object]]:
    with open(DATA / "prompts.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("entry", _prompt_corpus(), ids=lambda e: str(e["id"]))
def test_prompt_corpus(entry: dict[str, object]) -> None:
    prompt, steps = str(entry["prompt"]), int(str(entry["steps"]))
    if entry.get("error") == "networks":
        with pytest.raises(PromptSyntaxError):
            extract_extra_networks(prompt)
        return
    rest, networks = extract_extra_networks(prompt)
    assert rest == entry["without_networks"]
    assert [[n.kind, n.name, n.te_multiplier, n.unet_multiplier, n.dyn_dim] for n in networks] == entry["networks"]
    if entry.get("error") == "attention":
        with pytest.raises(PromptSyntaxError):
            parse_prompt_attention(rest)
    else:
        assert [list(run) for run in parse_prompt_attention(rest)] == entry["attention"]
    assert [list(item) for item in prompt_schedules(rest, steps)] == entry["schedule"]
    assert [list(part) for part in split_and(rest)] == entry["and"]
