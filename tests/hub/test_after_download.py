"""After a verified download: the sorter places the file (journalled, undoable), duplicates are dropped, files it
cannot place are kept, sidecars are written once, and a job killed half-way through sorting is finished."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from factory import ModelFactory
from faultserver import FaultServer, Reply
from hub_db import copy_database, make_template, sessions_for
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.sort_journal import SqlJournal
from modeldex.hub.after_download import preview_url, sort_download, write_sidecars
from modeldex.hub.download_job import STAGING_DIR, DownloadHandler, DownloadRequest
from modeldex.hub.job_runner import JobRunner
from modeldex.hub.jobs import JobQueue
from modeldex.identify.layouts import LayoutOptions
from modeldex.identify.sorting.apply import apply_plan, undo_run
from modeldex.identify.sorting.plan import SortOptions
from modeldex.identify.sorting.planner import plan_sort


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("afterdb"))


@pytest.fixture
def sessions(tmp_path: Path, template: Path) -> Iterator[sessionmaker[Session]]:
    factory = sessions_for(copy_database(template, tmp_path / "data" / "modeldex.db"))
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "webui"
    root.mkdir()
    return root


def staged(library: Path, source: Path) -> tuple[Path, str]:
    """`source` copied into a staging folder of the library, as a finished download would be; and its SHA256."""
    folder = library / STAGING_DIR / "7001-8001"
    folder.mkdir(parents=True)
    path = folder / source.name
    path.write_bytes(source.read_bytes())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sorted_download_is_journalled_and_undoable(
    library: Path, factory: ModelFactory, sessions: sessionmaker[Session]
) -> None:
    path, sha = staged(library, factory.lora("sdxl", name="style.safetensors"))
    journal = SqlJournal(sessions)
    placed = sort_download(path, sha, library, LayoutOptions(), journal)
    assert (placed.action, placed.kind, placed.base) == ("move", "lora", "sdxl")
    assert placed.path == library / "models" / "Lora" / "style.safetensors" and not path.exists()
    assert placed.usage == "<lora:style:0.8>" and placed.sort_run is not None
    undo_run(placed.sort_run, journal)
    assert path.is_file() and not placed.path.exists()


def test_content_already_in_the_library_drops_the_download(
    library: Path, factory: ModelFactory, sessions: sessionmaker[Session]
) -> None:
    source = factory.embedding("sd1", name="neg.safetensors")
    (library / "embeddings").mkdir()
    mine = library / "embeddings" / "my-neg.safetensors"
    mine.write_bytes(source.read_bytes())
    path, sha = staged(library, source)
    placed = sort_download(path, sha, library, LayoutOptions(), SqlJournal(sessions))
    assert (placed.action, placed.path) == ("duplicate", mine) and not path.exists()


def test_what_the_sorter_cannot_place_stays(library: Path, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    source = tmp_path / "notes.safetensors"
    source.write_bytes(b"\x00" * 4096)
    path, sha = staged(library, source)
    placed = sort_download(path, sha, library, LayoutOptions(), SqlJournal(sessions))
    assert placed.action == "kept" and placed.path == path and path.is_file()
    assert "not readable as a model" in placed.reason


def version_with_images(host: str) -> dict[str, Any]:
    return {
        "id": 7001,
        "modelId": 6001,
        "name": "v1",
        "model": {"name": "Demo", "type": "LORA"},
        "images": [
            {"url": host + "/a.mp4", "type": "video", "nsfwLevel": 1},
            {"url": host + "/b.webp", "type": "image", "nsfwLevel": 4},
            {"url": host + "/c.webp", "type": "image", "nsfwLevel": 1},
            {"url": host + "/d.webp", "type": "image", "nsfwLevel": 1},
        ],
    }


def test_preview_url_prefers_the_first_safest_still() -> None:
    assert preview_url(version_with_images("h")) == "h/c.webp"
    assert preview_url({"images": [{"url": "h/x.mp4"}, {"url": "h/y.gif", "type": "image"}]}) is None
    assert preview_url({"images": None}) is None
    assert preview_url({"images": [{"url": "h/y.jpeg", "nsfwLevel": 16}, {"url": "h/z"}]}) == "h/y.jpeg"


def webp_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (5, 7), (0, 90, 200, 128)).save(out, format="WEBP")
    return out.getvalue()


def test_sidecars_are_written_once_and_the_preview_is_a_real_png(tmp_path: Path, fault_server: FaultServer) -> None:
    model = tmp_path / "style.safetensors"
    model.write_bytes(b"model")
    fault_server.script("/c.webp", Reply(200, webp_bytes(), {"Content-Type": "image/webp"}))
    version = version_with_images(fault_server.url)
    with httpx.Client() as http:
        written, notes = write_sidecars(model, version, http=http)
        assert [p.name for p in written] == ["style.civitai.info", "style.preview.png"] and notes == []
        assert json.loads((tmp_path / "style.civitai.info").read_text()) == version
        with Image.open(tmp_path / "style.preview.png") as image:
            assert image.format == "PNG" and image.size == (5, 7) and image.mode == "RGBA"
        (tmp_path / "style.civitai.info").write_text("{}")  # edited by the user or another tool: kept
        again, _ = write_sidecars(model, version, http=http)
        assert again == [] and (tmp_path / "style.civitai.info").read_text() == "{}"
    assert len(fault_server.requests_to("/c.webp")) == 1


@pytest.mark.parametrize(
    ("reply", "note"),
    [(Reply.error(404, "gone"), "HTTP 404"), (Reply(200, b"<html>nope</html>", {}), "not a readable image")],
)
def test_a_preview_that_cannot_be_had_is_a_note(
    tmp_path: Path, fault_server: FaultServer, reply: Reply, note: str
) -> None:
    model = tmp_path / "style.safetensors"
    model.write_bytes(b"model")
    fault_server.script("/c.webp", reply)
    with httpx.Client() as http:
        written, notes = write_sidecars(model, version_with_images(fault_server.url), http=http)
    assert [p.name for p in written] == ["style.civitai.info"]
    assert len(notes) == 1 and note in notes[0] and not (tmp_path / "style.preview.png").exists()


def test_a_job_killed_while_sorting_is_finished_by_the_next_run(
    library: Path,
    tmp_path: Path,
    factory: ModelFactory,
    sessions: sessionmaker[Session],
) -> None:
    """The first worker dies between linking the file into the library and removing the staged name; the sort run
    is left `applying`. The next worker finishes that run and records the placement; nothing is downloaded."""
    source = factory.embedding("sd1", name="neg.safetensors")
    path, sha = staged(library, source)
    journal = SqlJournal(sessions)

    class Killed(BaseException):
        pass

    def die_after_link(label: str) -> None:
        if label == "linked":
            raise Killed

    plan = plan_sort(path, library, SortOptions(LayoutOptions()), settle=0)
    with pytest.raises(Killed):
        apply_plan(plan, journal, checkpoint=die_after_link)
    dest = library / "embeddings" / "neg.safetensors"
    assert path.exists() and dest.exists()  # two names for one file, run still `applying`
    assert journal.summaries()[0].state == "applying"

    queue = JobQueue(sessions, lock_dir=tmp_path / "locks")
    request = DownloadRequest(
        version_id=7001, file_id=8001, model_id=6001, url="http://127.0.0.1:9/never", file_name="neg.safetensors",
        size_kb=path.stat().st_size / 1024, sha256=sha.upper(), destination=str(library), sort=True,
        version={"id": 7001, "modelId": 6001, "name": "v1", "model": {"name": "Neg", "type": "TextualInversion"}},
    )  # fmt: skip
    payload = dict(request.to_payload(), downloaded={"path": str(path), "sha256": sha, "size": 1, "verified": True})
    job, _ = queue.enqueue("download", payload, key=request.key)
    with httpx.Client() as http:
        handler = DownloadHandler(http, sessions, journal, previews=False)
        outcome = JobRunner(queue, {"download": handler}).run([job.id])
    done = outcome.jobs[0]
    assert done.state == "done", done.error
    assert done.result is not None and done.result["path"] == str(dest) and done.result["action"] == "move"
    assert not path.exists() and dest.read_bytes() == source.read_bytes()
    assert journal.summaries()[0].state == "done"
    assert not (library / STAGING_DIR).exists()
    assert (library / "embeddings" / "neg.civitai.info").is_file()
