"""`modeldex download` and `modeldex jobs` end to end: the fault server plays CivitAI and its file host, files are real
model files from the factory, and every run checks the library, the sidecars, the index and the job table."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from factory import ModelFactory
from faultserver import FaultServer, Recorded, Reply, file_handler
from PIL import Image
from sqlalchemy import select

from modeldex.cli import download_cmd
from modeldex.cli.main import cli
from modeldex.config import Settings
from modeldex.db.engine import make_engine, session_factory
from modeldex.db.models import LocalFile, ModelVersion, VersionFile
from modeldex.hub.client import CivitaiClient
from modeldex.hub.download_job import STAGING_DIR, UNSORTED_DIR

VERSION_ID = 7001
FILE_ID = 8001
API = f"/api/v1/model-versions/{VERSION_ID}"
DOWNLOAD = f"/api/download/models/{VERSION_ID}"
SIGNED = "/bucket/file"
PREVIEW = "/images/preview.jpeg"


def png_bytes(fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 12), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def version_json(data: bytes, name: str, host: str, **extra: Any) -> dict[str, Any]:
    """A `/model-versions/{id}` answer for one file with the real SHA256 and size of `data`."""
    version: dict[str, Any] = {
        "id": VERSION_ID,
        "modelId": 6001,
        "name": "v1.0",
        "baseModel": "SD 1.5",
        "publishedAt": "2024-03-01T10:00:00.000Z",
        "trainedWords": ["demo style"],
        "model": {"name": "Demo Embedding", "type": "TextualInversion", "nsfw": False, "poi": False},
        "files": [
            {
                "id": FILE_ID,
                "name": name,
                "type": "Model",
                "primary": True,
                "sizeKB": len(data) / 1024,
                "metadata": {"format": "SafeTensor", "fp": "fp32", "size": "full"},
                "hashes": {
                    "SHA256": hashlib.sha256(data).hexdigest().upper(),
                    "AutoV2": hashlib.sha256(data).hexdigest()[:10].upper(),
                },
                "downloadUrl": f"https://civitai.com/api/download/models/{VERSION_ID}",
            }
        ],
        "images": [
            {"id": 1, "url": host + "/images/clip.mp4", "type": "video", "nsfwLevel": 1},
            {"id": 2, "url": host + "/images/racy.jpeg", "type": "image", "nsfwLevel": 8},
            {"id": 3, "url": host + PREVIEW, "type": "image", "nsfwLevel": 1, "meta": {"prompt": "demo"}},
        ],
        "downloadUrl": f"https://civitai.com/api/download/models/{VERSION_ID}",
    }
    version.update(extra)
    return version


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_server: FaultServer) -> Path:
    """CivitAI at the fault server, a fresh data folder and an empty A1111 library (returned)."""
    monkeypatch.setenv("MODELDEX_CIVITAI_URL", fault_server.url)
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(tmp_path / "data"))
    library = tmp_path / "webui"
    library.mkdir()
    return library


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's client with no waits between retries (and few of them)."""

    def client(settings: Settings) -> CivitaiClient:
        return CivitaiClient(settings.civitai_url, settings.civitai_api_key, max_retries=2, backoff_base=0.0)

    monkeypatch.setattr(download_cmd, "civitai_client", client)


def serve_file(server: FaultServer, host: FaultServer, data: bytes, name: str, **version: Any) -> None:
    server.script(API, Reply.json(version_json(data, name, host.url, **version)))
    server.script(DOWNLOAD, Reply.redirect(host.url + SIGNED + "?X-Amz-Signature=s1"))
    host.script(SIGNED, file_handler(data, filename=name))
    host.script(PREVIEW, Reply(200, png_bytes(), {"Content-Type": "image/jpeg"}))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [*map(str, args)], catch_exceptions=False)


def sessions(tmp_path: Path) -> Any:
    return session_factory(make_engine(f"sqlite:///{tmp_path / 'data' / 'modeldex.db'}"))


def visible_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_download_sorts_indexes_and_writes_sidecars(
    env: Path,
    tmp_path: Path,
    fault_server: FaultServer,
    file_host: FaultServer,
    factory: ModelFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = factory.embedding("sd1", name="demoEmbed_v10.safetensors")
    data = model.read_bytes()
    serve_file(fault_server, file_host, data, "demoEmbed_v10.safetensors")
    monkeypatch.setenv("CIVITAI_API_KEY", "sk-secret-4242-key")
    result = run("download", "v:7001", "--into", env)
    assert result.exit_code == 0, result.output
    placed = env / "embeddings" / "demoEmbed_v10.safetensors"
    assert placed.read_bytes() == data
    assert f"sorted: {placed} · embedding (sd1)" in result.stdout
    assert "use: demoEmbed_v10" in result.stdout
    assert visible_files(env) == [
        "embeddings/demoEmbed_v10.civitai.info",
        "embeddings/demoEmbed_v10.preview.png",
        "embeddings/demoEmbed_v10.safetensors",
    ]
    info = json.loads((env / "embeddings" / "demoEmbed_v10.civitai.info").read_text())
    assert info["id"] == VERSION_ID and info["files"][0]["hashes"]["SHA256"] == hashlib.sha256(data).hexdigest().upper()
    with Image.open(env / "embeddings" / "demoEmbed_v10.preview.png") as preview:
        assert preview.format == "PNG" and preview.size == (8, 12)
    assert file_host.requests_to("/images/racy.jpeg") == [] and file_host.requests_to("/images/clip.mp4") == []
    assert all("authorization" not in r.headers for r in file_host.requests)  # the file host never sees the key
    assert fault_server.requests_to(DOWNLOAD)[0].headers["authorization"] == "Bearer sk-secret-4242-key"
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]  # the database, its WAL, lock files
    assert stored and all(b"sk-secret" not in p.read_bytes() for p in stored)
    with sessions(tmp_path)() as session:
        row = session.scalars(select(LocalFile).where(LocalFile.path == str(placed))).one()
        assert (row.version_file_id, row.kind, row.sha256) == (FILE_ID, "embedding", hashlib.sha256(data).hexdigest())
        assert session.get(ModelVersion, VERSION_ID) is not None and session.get(VersionFile, FILE_ID) is not None
    listed = [json.loads(line) for line in run("jobs", "--json").stdout.splitlines()]
    assert len(listed) == 1 and listed[0]["state"] == "done" and listed[0]["result"]["path"] == str(placed)
    assert listed[0]["bytes_done"] == len(data) and "sk-secret" not in json.dumps(listed[0])


def test_the_same_download_again_is_not_fetched_again(
    env: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.embedding("sd1", name="dup.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "dup.safetensors")
    assert run("download", "v:7001", "--into", env).exit_code == 0
    again = run("download", "https://civitai.com/models/6001?modelVersionId=7001", "--into", env, "--json")
    assert again.exit_code == 0, again.output
    placed = env / "embeddings" / "dup.safetensors"
    assert json.loads(again.stdout) == {"job": None, "state": "done", "action": "present", "path": str(placed)}
    assert len(file_host.requests_to(SIGNED)) == 1
    placed.write_bytes(data[:-1] + b"\x01")  # changed since it was indexed: fetched again, the copy is not a duplicate
    changed = run("download", "v:7001", "--into", env, "--no-preview")
    assert changed.exit_code == 0, changed.output
    assert (env / "embeddings" / "dup-1.safetensors").read_bytes() == data


def test_content_already_in_an_unindexed_library_is_not_placed_twice(
    env: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.embedding("sd1", name="dup.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "dup.safetensors")
    (env / "embeddings").mkdir()
    (env / "embeddings" / "mine.safetensors").write_bytes(data)
    again = run("download", "v:7001", "--into", env, "--json")
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["state"] == "done" and outcome["action"] == "duplicate"
    assert outcome["path"] == str(env / "embeddings" / "mine.safetensors")
    assert [p for p in visible_files(env) if p.endswith(".safetensors")] == ["embeddings/mine.safetensors"]
    assert (env / "embeddings" / "mine.civitai.info").is_file()
    assert not (env / STAGING_DIR).exists()


def test_a_model_id_downloads_its_latest_version_with_filters(
    env: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.embedding("sd1", name="x.safetensors").read_bytes()
    version = version_json(data, "neg.safetensors", file_host.url)
    version["files"].insert(0, dict(version["files"][0], id=8000, name="neg.pt", primary=True,
                                    metadata={"format": "PickleTensor"}))  # fmt: skip
    version["files"][1]["primary"] = False
    model = {"id": 6001, "name": "Demo", "type": "TextualInversion", "modelVersions": [version, dict(version, id=1)]}
    fault_server.script("/api/v1/models/6001", Reply.json(model))
    fault_server.script(API, Reply.json(version))
    fault_server.script(DOWNLOAD, Reply.redirect(file_host.url + SIGNED))
    file_host.script(SIGNED, file_handler(data, filename="neg.safetensors"))
    result = run("download", "6001", "--format", "SafeTensor", "--into", env, "--no-preview")
    assert result.exit_code == 0, result.output
    assert (env / "embeddings" / "neg.safetensors").read_bytes() == data
    sent = fault_server.requests_to(DOWNLOAD)[0]
    assert sent.param("format") == "SafeTensor" and sent.param("type") == "Model"
    assert file_host.requests_to(PREVIEW) == []
    missing = run("download", "v:7001", "--fp", "bf16", "--into", env)
    assert missing.exit_code == 4
    assert "has no file with fp=bf16 (it has: Model PickleTensor; Model SafeTensor fp32 full)" in missing.stderr


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (Reply.json({"error": "Unauthorized", "message": "log in to download"}, 401), 3, "CIVITAI_API_KEY"),
        (Reply.redirect("/login?reason=download-auth"), 3, "login page"),
        (Reply.error(404, "Model file not found"), 4, "not found"),
    ],
)
def test_refusals_give_their_exit_status_and_save_nothing(
    env: Path, fault_server: FaultServer, file_host: FaultServer, reply: Reply, code: int, words: str
) -> None:
    fault_server.script(API, Reply.json(version_json(b"x" * 5000, "m.safetensors", file_host.url)))
    fault_server.script(DOWNLOAD, reply)
    result = run("download", "v:7001", "--into", env)
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and words in result.stderr and result.stdout == ""
    assert visible_files(env) == []
    failed = json.loads(run("jobs", "--json").stdout)
    assert failed["state"] == "failed" and failed["result"]["exit_code"] == code


def test_early_access_is_named(env: Path, fault_server: FaultServer, file_host: FaultServer) -> None:
    version = version_json(b"x" * 5000, "m.safetensors", file_host.url, earlyAccessEndsAt="2999-01-01T00:00:00.000Z")
    fault_server.script(API, Reply.json(version))
    fault_server.script(DOWNLOAD, Reply.error(401, "Unauthorized"))
    result = run("download", "v:7001", "--into", env)
    assert result.exit_code == 3 and "early access until 2999-01-01 00:00 UTC" in result.stderr


def test_unknown_version_and_bad_targets(env: Path, fault_server: FaultServer) -> None:
    missing = run("download", "v:999", "--into", env)
    assert missing.exit_code == 4 and "not found" in missing.stderr
    assert run("download", "https://example.com/models/1", "--into", env).exit_code == 2
    assert run("download", "v:1", "--into", env / "nope").exit_code == 2


def test_a_sha256_mismatch_fails_and_keeps_nothing(
    env: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.embedding("sd1", name="x.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "m.safetensors")
    file_host.script(SIGNED, file_handler(data[:-4] + b"\x00\x00\x00\x01", filename="m.safetensors"))
    result = run("download", "v:7001", "--into", env)
    assert result.exit_code == 1 and "differs from CivitAI's" in result.stderr
    assert visible_files(env) == []


def test_a_failed_download_resumes_its_part_on_the_next_run(
    env: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory, fast_retries: None
) -> None:
    data = factory.lora("sd1", name="style.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "style.safetensors")
    whole = file_handler(data, filename="style.safetensors")

    def break_at_half(request: Recorded) -> Reply:  # every answer breaks at the same byte of the file
        reply = whole(request)
        start = int(request.headers.get("range", "bytes=0-")[6:].rstrip("-"))
        return dataclasses.replace(reply, reset_at=max(0, len(data) // 2 - start))

    file_host.script(SIGNED, break_at_half)
    first = run("download", "v:7001", "--into", env, "--no-preview")
    assert first.exit_code == 1 and "network" in first.stderr
    parts = list((env / STAGING_DIR).rglob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < len(data)
    kept = parts[0].stat().st_size
    file_host.script(SIGNED, file_handler(data, filename="style.safetensors"))
    second = run("download", "v:7001", "--into", env, "--no-preview", "--json")
    assert second.exit_code == 0, second.output
    outcome = json.loads(second.stdout)
    assert outcome["resumed_from"] == kept and outcome["fetched"] == len(data) - kept
    assert (env / "models" / "Lora" / "style.safetensors").read_bytes() == data
    jobs = [json.loads(line) for line in run("jobs", "--json").stdout.splitlines()]
    assert [(j["state"], j["attempts"]) for j in jobs] == [("done", 2)]


def test_without_a_library_the_file_is_saved_in_the_current_folder(
    env: Path,
    tmp_path: Path,
    fault_server: FaultServer,
    file_host: FaultServer,
    factory: ModelFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = factory.embedding("sd1", name="x.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "plain.safetensors")
    here = tmp_path / "here"
    here.mkdir()
    (here / "plain.safetensors").write_bytes(b"someone else's file")
    monkeypatch.chdir(here)
    result = run("download", "v:7001", "--no-preview")
    assert result.exit_code == 0, result.output
    assert (here / "plain-1.safetensors").read_bytes() == data
    assert (here / "plain.safetensors").read_bytes() == b"someone else's file"
    assert visible_files(here) == ["plain-1.civitai.info", "plain-1.safetensors", "plain.safetensors"]


def test_a_file_the_sorter_cannot_place_is_kept_in_the_downloads_folder(
    env: Path, fault_server: FaultServer, file_host: FaultServer
) -> None:
    data = os.urandom(20_000)
    serve_file(fault_server, file_host, data, "poses.zip")
    result = run("download", "v:7001", "--into", env, "--no-preview")
    assert result.exit_code == 0, result.output
    assert (env / UNSORTED_DIR / "poses.zip").read_bytes() == data
    assert "saved, not sorted" in result.stdout and "not readable as a model" in result.stdout


def test_jobs_command_lists_cancels_retries_and_runs(
    env: Path, tmp_path: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.embedding("sd1", name="x.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "queued.safetensors")
    assert run("jobs").stdout == "no jobs\n"
    fault_server.script(DOWNLOAD, Reply.error(404, "gone"))
    assert run("download", "v:7001", "--into", env).exit_code == 4
    listing = run("jobs").stdout
    assert "failed" in listing and "queued.safetensors (version 7001)" in listing and "error: " in listing
    assert run("jobs", "--cancel", "1").exit_code == 2  # failed already: nothing to cancel
    assert run("jobs", "--retry", "1").exit_code == 0
    assert json.loads(run("jobs", "--json").stdout)["state"] == "queued"
    fault_server.script(DOWNLOAD, Reply.redirect(file_host.url + SIGNED))
    ran = run("jobs", "--run")
    assert ran.exit_code == 0, ran.output
    assert (env / "embeddings" / "queued.safetensors").read_bytes() == data
    assert run("jobs", "--run").stdout == "no queued jobs\n"
    assert run("jobs", "--clear").stdout == "1 finished jobs removed\n"
    assert run("jobs", "--retry", "5").exit_code == 2
    assert run("jobs", "--run", "--clear").exit_code == 2


def test_download_from_modeldex_serve_as_the_civitai_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory: ModelFactory
) -> None:
    """Another modeldex's index, served read-only, is the CivitAI of this one: the version, the redirect-free
    download with its Content-Disposition, the SHA256 check and the sort all go through `modeldex serve`."""
    from modeldex.db.migrate import ensure_schema
    from modeldex.hub.serve import create_app
    from modeldex.hub.serve.readonly import read_only_session_factory
    from modeldex.hub.serve.server import serve_in_thread
    from modeldex.hub.store import upsert_version

    lora = factory.lora("sdxl", name="mirrored_style.safetensors")
    data = lora.read_bytes()
    version = version_json(data, "mirrored_style.safetensors", "http://127.0.0.1:9", images=[])
    version["baseModel"], version["model"] = "SDXL 1.0", {"name": "Mirrored", "type": "LORA"}
    mirror_engine = make_engine(f"sqlite:///{tmp_path / 'mirror.db'}")
    ensure_schema(mirror_engine)
    with session_factory(mirror_engine)() as session:
        upsert_version(session, version)
        st = lora.stat()
        session.add(LocalFile(path=str(lora), size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                              version_file_id=FILE_ID))  # fmt: skip
        session.commit()
    library = tmp_path / "comfy"
    library.mkdir()
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELDEX_SORT__LAYOUT", "comfyui")
    with serve_in_thread(create_app(read_only_session_factory(mirror_engine))) as base:
        monkeypatch.setenv("MODELDEX_CIVITAI_URL", base)
        result = run("download", f"{base}/api/download/models/{VERSION_ID}", "--into", library, "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    placed = library / "models" / "loras" / "mirrored_style.safetensors"
    assert outcome["path"] == str(placed) and outcome["kind"] == "lora" and outcome["base"] == "sdxl"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert outcome["verified"] is True and outcome["usage"] == "Load LoRA, lora_name: mirrored_style.safetensors"


def test_several_targets_run_together_and_the_first_failure_sets_the_status(
    env: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.embedding("sd1", name="x.safetensors").read_bytes()
    serve_file(fault_server, file_host, data, "one.safetensors")
    result = run("download", "v:999", "v:7001", "--into", env, "--no-preview")
    assert result.exit_code == 4
    assert result.stderr.startswith("modeldex: not found: v:999: model version 999 not found")
    assert (env / "embeddings" / "one.safetensors").read_bytes() == data
    assert f"sorted: {env / 'embeddings' / 'one.safetensors'}" in result.stdout
