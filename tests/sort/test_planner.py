"""Planning: where each file goes, every collision case, and everything that stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sort_helpers import FakeIdentify, write

from modeldex.errors import ReadError, SortError
from modeldex.identify.layouts import LayoutOptions
from modeldex.identify.sorting.fsops import sha256_file
from modeldex.identify.sorting.plan import SortAction, SortOptions, SortPlan
from modeldex.identify.sorting.planner import plan_sort

KINDS = {
    "style.safetensors": ("lora", "sdxl", "lora"),
    "hada.safetensors": ("lora", "sd1", "loha"),
    "base.safetensors": ("checkpoint", "sd1", None),
    "neg.pt": ("embedding", "sd1", None),
    "aesthetic.pt": ("aesthetic_gradient", "sd1", None),
    "clear.pth": ("upscaler", "any", None),
    "日本語 モデル ✓.safetensors": ("lora", "flux1", "lora"),
}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    source, root = tmp_path / "downloads", tmp_path / "webui"
    source.mkdir()
    root.mkdir()
    return source, root


def plan(source: Path, root: Path, **options: object) -> SortPlan:
    layout = LayoutOptions(
        str(options.pop("layout", "a1111")),  # type: ignore[arg-type]
        by_base=bool(options.pop("by_base", False)),
        lycoris_dir=bool(options.pop("lycoris_dir", False)),
    )
    return plan_sort(source, root, SortOptions(layout=layout, **options), identify=FakeIdentify(KINDS), settle=0)  # type: ignore[arg-type]


def by_name(p: SortPlan) -> dict[str, SortAction]:
    return {a.source.name: a for a in p.actions}


def test_each_kind_goes_to_its_folder_with_sha_kind_and_usage(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    for name in ("style.safetensors", "base.safetensors", "neg.pt", "clear.pth"):
        write(source / name)
    actions = by_name(plan(source, root))
    assert actions["style.safetensors"].destination == root / "models/Lora/style.safetensors"
    assert actions["style.safetensors"].usage == "<lora:style:0.8>"
    assert actions["style.safetensors"].kind == "lora" and actions["style.safetensors"].base == "sdxl"
    assert actions["base.safetensors"].destination == root / "models/Stable-diffusion/base.safetensors"
    assert actions["neg.pt"].destination == root / "embeddings/neg.pt"
    assert actions["clear.pth"].destination == root / "models/ESRGAN/clear.pth"
    for action in actions.values():
        assert action.action == "move"
        assert action.sha256 == sha256_file(action.source)


def test_comfyui_by_base_and_lycoris_dir(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    for name in ("style.safetensors", "hada.safetensors", "aesthetic.pt", "clear.pth"):
        write(source / name)
    comfy = by_name(plan(source, root, layout="comfyui", by_base=True, lycoris_dir=True))
    assert comfy["style.safetensors"].destination == root / "models/loras/sdxl/style.safetensors"
    assert comfy["style.safetensors"].usage == "Load LoRA, lora_name: sdxl/style.safetensors"
    assert comfy["hada.safetensors"].destination == root / "models/loras/sd1/hada.safetensors"
    assert comfy["clear.pth"].destination == root / "models/upscale_models/clear.pth"
    assert comfy["aesthetic.pt"].action == "skip" and "no folder for aesthetic_gradient" in comfy["aesthetic.pt"].reason
    a1111 = by_name(plan(source, root, lycoris_dir=True))
    assert a1111["hada.safetensors"].destination == root / "models/LyCORIS/hada.safetensors"
    assert a1111["style.safetensors"].destination == root / "models/Lora/style.safetensors"
    assert a1111["aesthetic.pt"].destination == (
        root / "extensions/stable-diffusion-webui-aesthetic-gradients/aesthetic_embeddings/aesthetic.pt"
    )


def test_name_taken_by_other_content_gets_a_suffix_with_its_sidecars(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    write(source / "style.safetensors")
    write(source / "style.preview.png")
    write(source / "style.civitai.info")
    write(root / "models/Lora/style.safetensors", b"someone else's lora")
    write(root / "models/Lora/style-1.preview.png", b"a preview of another style-1")
    actions = by_name(plan(source, root))
    # style-1 is free for the model but not for its preview, so both become style-2
    assert actions["style.safetensors"].destination == root / "models/Lora/style-2.safetensors"
    assert actions["style.safetensors"].usage == "<lora:style-2:0.8>"
    assert actions["style.preview.png"].destination == root / "models/Lora/style-2.preview.png"
    assert actions["style.civitai.info"].destination == root / "models/Lora/style-2.civitai.info"
    assert actions["style.preview.png"].sidecar_of == source / "style.safetensors"
    assert actions["style.preview.png"].action == "move"


def test_same_content_at_the_destination_is_a_duplicate_kept_unless_dedupe(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    write(source / "style.safetensors", b"the lora")
    write(source / "style.preview.png")
    existing = write(root / "models/Lora/renamed by me.safetensors", b"the lora")
    write(root / "models/Lora/same size other.safetensors", b"the LORA")
    actions = by_name(plan(source, root))
    assert actions["style.safetensors"].action == "duplicate"
    assert actions["style.safetensors"].destination == existing
    assert "same SHA256" in actions["style.safetensors"].reason
    assert actions["style.preview.png"].action == "skip"

    trash = dirs[0].parent / "data" / "trash"
    deduped = by_name(plan(source, root, dedupe=True, trash=trash))
    assert deduped["style.safetensors"].action == "dedupe"
    dest = deduped["style.safetensors"].destination
    assert dest is not None and dest.parent.parent == trash and dest.name == "style.safetensors"
    # the preview has no counterpart beside the library copy, so it joins it there
    assert deduped["style.preview.png"].action == "move"
    assert deduped["style.preview.png"].destination == root / "models/Lora/renamed by me.preview.png"


def test_two_sources_with_one_name_or_one_content(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    write(source / "a/style.safetensors", b"first")
    write(source / "b/style.safetensors", b"second")
    write(source / "c/style.safetensors", b"first")
    p = plan(source, root)
    a, b, c = p.actions
    assert a.destination == root / "models/Lora/style.safetensors" and a.action == "move"
    assert b.destination == root / "models/Lora/style-1.safetensors" and b.action == "move"
    assert c.action == "duplicate" and c.destination == a.destination
    assert p.counts() == {"move": 2, "duplicate": 1}


def test_what_stays_and_why(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    source, root = dirs
    write(source / "notes.txt")
    write(source / "model_unsafe.ckpt")
    write(source / "model_unsafe.preview.png")
    write(source / "broken.safetensors")
    write(source / "big.safetensors.part")
    write(source / "aria.safetensors")
    write(source / "aria.safetensors.aria2")
    write(source / ".hidden.safetensors")
    write(source / "lonely.preview.png")
    write(source / "pipeline/model_index.json", "{}")
    write(source / "pipeline/unet/diffusion_pytorch_model.safetensors")
    os.symlink(tmp_path / "elsewhere.safetensors", source / "style.safetensors")
    reasons = {a.source.name: a.reason for a in plan(source, root).actions if a.action == "skip"}
    assert "not recognised" in reasons["notes.txt"]
    assert "unsafe pickle (os.system)" in reasons["model_unsafe.ckpt"]
    assert "stays with its model" in reasons["model_unsafe.preview.png"]
    assert "truncated file" in reasons["broken.safetensors"]
    assert "partial download (.part file)" in reasons["big.safetensors.part"]
    assert "aria2" in reasons["aria.safetensors"] and "aria2" in reasons["aria.safetensors.aria2"]
    assert "hidden" in reasons[".hidden.safetensors"]
    assert "no model file" in reasons["lonely.preview.png"]
    assert "diffusers folder" in reasons["pipeline"]
    assert "symbolic link" in reasons["style.safetensors"]
    assert "diffusion_pytorch_model.safetensors" not in reasons


def test_quarantine_moves_unsafe_files_and_their_sidecars(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    source, root = dirs
    write(source / "x_unsafe.ckpt")
    write(source / "x_unsafe.civitai.info")
    jail = tmp_path / "jail"
    write(jail / "x_unsafe.ckpt", b"an earlier one")
    actions = by_name(plan(source, root, quarantine=jail))
    assert actions["x_unsafe.ckpt"].action == "quarantine"
    assert actions["x_unsafe.ckpt"].destination == jail / "x_unsafe-1.ckpt"
    assert actions["x_unsafe.civitai.info"].destination == jail / "x_unsafe-1.civitai.info"
    assert actions["x_unsafe.civitai.info"].action == "quarantine"


def test_growing_files_are_left_alone(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    growing = write(source / "style.safetensors")

    def sleep(_seconds: float) -> None:
        with growing.open("ab") as f:
            f.write(b"+")

    p = plan_sort(source, root, SortOptions(), identify=FakeIdentify(KINDS), settle=0.1, sleep=sleep)
    assert p.actions[0].action == "skip" and "still being written" in p.actions[0].reason


def test_files_already_in_place_stay_and_the_library_inside_source_is_not_walked(tmp_path: Path) -> None:
    root = tmp_path / "webui"
    write(root / "models/Lora/style.safetensors")
    write(root / "models/Lora/my folder/hada.safetensors")
    write(root / "models/Stable-diffusion/neg.pt")  # an embedding in the wrong folder
    ident = FakeIdentify(KINDS)
    actions = by_name(plan_sort(root, root, SortOptions(), identify=ident, settle=0))
    assert actions["style.safetensors"].action == "skip" and actions["style.safetensors"].reason == "already in place"
    assert actions["hada.safetensors"].reason == "already in place"
    assert actions["neg.pt"].destination == root / "embeddings/neg.pt"
    by_base = by_name(plan_sort(root, root, SortOptions(LayoutOptions(by_base=True)), identify=ident, settle=0))
    assert by_base["style.safetensors"].destination == root / "models/Lora/sdxl/style.safetensors"

    downloads = tmp_path
    write(downloads / "clear.pth")
    outer = plan_sort(downloads, root, SortOptions(), identify=FakeIdentify(KINDS), settle=0)
    assert [a.source.name for a in outer.actions] == ["clear.pth"]


def test_unicode_names_keep_their_spelling(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    write(source / "日本語 モデル ✓.safetensors")
    write(source / "日本語 モデル ✓.preview.png")
    actions = by_name(plan(source, root))
    assert actions["日本語 モデル ✓.safetensors"].destination == root / "models/Lora/日本語 モデル ✓.safetensors"
    assert actions["日本語 モデル ✓.safetensors"].usage == "<lora:日本語 モデル ✓:0.8>"
    assert actions["日本語 モデル ✓.preview.png"].destination == root / "models/Lora/日本語 モデル ✓.preview.png"


def test_a_single_file_source(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    p = plan(write(source / "style.safetensors"), root)
    assert [a.destination for a in p.actions] == [root / "models/Lora/style.safetensors"]


def test_bad_arguments_raise_sort_errors(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    with pytest.raises(SortError, match="does not exist"):
        plan(source / "nope", root)
    with pytest.raises(SortError, match="library folder"):
        plan(source, root / "nope")
    with pytest.raises(SortError, match="only when moving"):
        plan(source, root, dedupe=True, trash=root, mode="copy")


def test_identify_and_hash_run_only_where_needed(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    write(source / "style.safetensors")
    write(source / "style.preview.png")
    write(source / "x.part")
    hashed: list[str] = []
    ident = FakeIdentify(KINDS)

    def sha(path: Path) -> str:
        hashed.append(path.name)
        return sha256_file(path)

    plan_sort(source, root, SortOptions(), identify=ident, sha256_of=sha, settle=0)
    assert [p.name for p in ident.calls] == ["style.safetensors"]
    assert sorted(hashed) == ["style.preview.png", "style.safetensors"]


def test_a_file_that_cannot_be_hashed_stays_with_its_sidecars(dirs: tuple[Path, Path]) -> None:
    source, root = dirs
    write(source / "style.safetensors")
    write(source / "style.preview.png")
    write(source / "base.safetensors")

    def sha(path: Path) -> str:
        if path.name == "style.preview.png":
            raise ReadError(f"cannot read {path}: Input/output error")
        return sha256_file(path)

    p = plan_sort(source, root, SortOptions(), identify=FakeIdentify(KINDS), sha256_of=sha, settle=0)
    actions = by_name(p)
    assert actions["style.safetensors"].action == "skip"
    assert "could not be read (cannot read" in actions["style.safetensors"].reason
    assert actions["style.preview.png"].action == "skip"
    assert actions["base.safetensors"].action == "move"


def test_two_deduped_files_of_one_name_get_distinct_trash_names(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    source, root = dirs
    write(root / "models/Lora/a.safetensors", b"first")
    write(root / "models/Lora/a.preview.png", b"library preview")
    write(root / "models/Lora/b.safetensors", b"second")
    write(root / "models/Lora/b.preview.png", b"library preview b")
    for sub, content in (("x", b"first"), ("y", b"second")):
        write(source / sub / "style.safetensors", content)
        write(source / sub / "style.preview.png", b"preview " + content)
    p = plan(source, root, dedupe=True, trash=tmp_path / "trash")
    targets = [a.destination for a in p.actions if a.action == "dedupe"]
    assert len(targets) == 4 and len(set(targets)) == 4
    assert sorted(t.name for t in targets if t is not None) == [
        "style-1.preview.png", "style-1.safetensors", "style.preview.png", "style.safetensors",
    ]  # fmt: skip
