"""`GET /api/download/models/{versionId}`: the local copy of a version's file, with Range support.

The file is picked as CivitAI picks it (the first file matching `type`, `format`, `size` and `fp` when any is
given, else the primary file) and served from the local file linked to it (`local_file.version_file_id`) that is
still on disk. Byte ranges (206), unsatisfiable ranges (416) and `If-Range` come from Starlette's FileResponse.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from sqlalchemy import select

from modeldex.db.models import LocalFile, ModelVersion, VersionFile
from modeldex.hub.rows_to_api import is_published, primary_file
from modeldex.hub.serve.deps import DbSession, path_id
from modeldex.hub.serve.enums import MODEL_FILE_TYPES
from modeldex.hub.serve.params import ApiError, Params, not_found

router = APIRouter()

_FILTERS = {"format": "format", "size": "size", "fp": "fp"}


@router.api_route("/api/download/models/{version_id}", methods=["GET", "HEAD"])
def download(version_id: str, request: Request, session: DbSession) -> FileResponse:
    """The version's file as an attachment named as CivitAI names it; 404 JSON when no local copy exists."""
    number = path_id(version_id, "modelVersionId")
    p = Params(request.query_params)
    wanted_type = p.choice("type", MODEL_FILE_TYPES)
    wanted = {attr: p.string(name) for name, attr in _FILTERS.items()}
    if p.issues:
        raise ApiError(400, f"Invalid type: {p.string('type')!r}")
    version = session.get(ModelVersion, number)
    if version is None or not is_published(version):
        raise not_found("Model not found")
    chosen = _pick_file(version.files, wanted_type, wanted)
    if chosen is None:
        raise not_found("Model file not found")
    path = _local_copy(session, chosen)
    if path is None:
        raise ApiError(404, "Model file not found", message=f"No local copy of {chosen.name} in this index")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=chosen.name or path.name,
        content_disposition_type="attachment",
    )


def _pick_file(files: list[VersionFile], wanted_type: str | None, wanted: dict[str, str | None]) -> VersionFile | None:
    given = {attr: value.lower() for attr, value in wanted.items() if value is not None}
    if wanted_type is None and not given:
        return primary_file(files)
    for file in files:
        if wanted_type is not None and file.type != wanted_type:
            continue
        if all((getattr(file, attr) or "").lower() == value for attr, value in given.items()):
            return file
    return None


def _local_copy(session: DbSession, file: VersionFile) -> Path | None:
    """The first linked local file that is still a regular file on disk."""
    for local_path in session.scalars(select(LocalFile.path).where(LocalFile.version_file_id == file.id)):
        path = Path(local_path)
        if path.is_file():
            return path
    return None
