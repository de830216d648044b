"""safe_filename and filename_from_disposition: untrusted names from servers become one harmless file name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldex.hub.filenames import MAX_NAME_BYTES, filename_from_disposition, safe_filename


@pytest.mark.parametrize(
    ("given_name", "safe"),
    [
        ("realisticDemo_v51.safetensors", "realisticDemo_v51.safetensors"),
        ("../../.bashrc", "bashrc"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\System32\\evil.dll", "evil.dll"),
        ("..", "download"),
        ("...", "download"),
        ("", "download"),
        ("a\x00b\x1fc\x7f.ckpt", "a_b_c_.ckpt"),
        ('what?<is>:"this"|*.pt', "what__is___this___.pt"),
        ("trailing dots... ", "trailing dots"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.safetensors", "_com1.safetensors"),
        ("console.safetensors", "console.safetensors"),
        ("gnp.\u202eexe.safetensors", "gnp.exe.safetensors"),
        ("Cafe\u0301.pt", "Café.pt"),
        ("名前.safetensors", "名前.safetensors"),
    ],
)
def test_safe_filename(given_name: str, safe: str) -> None:
    assert safe_filename(given_name) == safe


def test_fallback_is_made_safe_too() -> None:
    assert safe_filename("../", fallback="../x.safetensors") == "x.safetensors"


def test_long_names_are_cut_before_the_extension_on_a_character_boundary() -> None:
    name = "é" * 300 + ".safetensors"
    safe = safe_filename(name)
    assert safe.endswith(".safetensors") and len(safe.encode()) <= MAX_NAME_BYTES
    assert safe.startswith("éé")
    long_suffix = "a." + "b" * 400
    assert len(safe_filename(long_suffix).encode()) <= MAX_NAME_BYTES


@given(st.text(max_size=600))
def test_any_text_gives_a_single_plain_component(text: str) -> None:
    safe = safe_filename(text)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".") and not safe.endswith((".", " "))
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert all(ord(c) >= 32 for c in safe)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="model.safetensors"', "model.safetensors"),
        ("attachment; filename=model.safetensors", "model.safetensors"),
        ('attachment; filename="a \\"quoted\\" ;name.pt"', 'a "quoted" ;name.pt'),
        ("attachment; filename*=UTF-8''%E5%90%8D%E5%89%8D.safetensors", "名前.safetensors"),
        ("attachment; filename=\"fallback.pt\"; filename*=UTF-8''real%20name.pt", "real name.pt"),
        ('attachment; FILENAME="upper.pt"', "upper.pt"),
        ("attachment; filename*=bogus-charset''x.pt; filename=\"plain.pt\"", "plain.pt"),
        ("attachment", None),
        ("", None),
        (None, None),
    ],
)
def test_filename_from_disposition(header: str | None, name: str | None) -> None:
    assert filename_from_disposition(header) == name
