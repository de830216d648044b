"""Downloads from a local `modeldex serve`: throughput against plain httpx streaming (goal >= 0.9), and the bytes
fetched again after a resume (goal: only the missing ones).

Builds a file of random bytes, an index that links it to a CivitAI version, and starts `modeldex serve` on it in
its own process (so server and client do not share a GIL). Then:
  - throughput: `download_file` (redirect handling, `.part`, SHA256 while writing, size and hash check, fsync,
    rename) against the baseline: `httpx.Client.stream` of the same URL written to a file (no hash, no fsync);
    best of several runs, alternating the sides, each into a fresh folder;
  - resume after a stop: a `.part` holding the first 37 % of the file, then `download_file`: the bytes it fetched
    against the bytes that were missing;
  - resume after a kill: a child process downloading the file is SIGKILLed half-way; the parent resumes its `.part`
    and reports the bytes fetched again beyond the missing ones (what the child had received but not written).

    .venv/bin/python bench/bench_download.py [--size-mb 512] [--runs 3] [--dir /some/tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema
from modeldex.db.models import LocalFile
from modeldex.hub.download import PART_SUFFIX, Expected, download_file
from modeldex.hub.store import upsert_version

VERSION_ID = 424242
FILE_NAME = "bench_model.safetensors"
STARTUP_TIMEOUT = 30.0


def make_file(path: Path, size: int) -> str:
    """Random bytes (shaped like nothing a server would sniff as text); returns the SHA256."""
    digest = hashlib.sha256()
    block = os.urandom(8 << 20)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def make_index(db: Path, model: Path, sha256: str) -> str:
    """An index with one version whose file is `model`; returns its SQLAlchemy URL."""
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    ensure_schema(engine)
    version = {
        "id": VERSION_ID,
        "modelId": VERSION_ID,
        "name": "bench",
        "status": "Published",
        "publishedAt": "2024-01-01T00:00:00.000Z",
        "model": {"name": "Bench", "type": "Checkpoint"},
        "files": [
            {
                "id": VERSION_ID,
                "name": FILE_NAME,
                "type": "Model",
                "primary": True,
                "sizeKB": model.stat().st_size / 1024,
                "hashes": {"SHA256": sha256.upper()},
            }
        ],
    }
    with session_factory(engine)() as session:
        upsert_version(session, version)
        st = model.stat()
        session.add(
            LocalFile(path=str(model), size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, sha256=sha256,
                      version_file_id=VERSION_ID)
        )  # fmt: skip
        session.commit()
    engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db_url: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, MODELDEX_DATA_DIR=str(work / "data"), MODELDEX_CONFIG=str(work / "config.toml"))
    command = [sys.executable, "-m", "modeldex", "serve", "--db", db_url, "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/api/v1/enums", timeout=1.0)
            return server, base
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("modeldex serve did not start")


def baseline(http: httpx.Client, url: str, target: Path) -> float:
    """Plain httpx streaming into a file; seconds."""
    started = time.perf_counter()
    with http.stream("GET", url, follow_redirects=True) as response, open(target, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_raw():
            out.write(chunk)
    return time.perf_counter() - started


def ours(http: httpx.Client, url: str, folder: Path, expected: Expected) -> float:
    started = time.perf_counter()
    got = download_file(http, url, folder, expected=expected, name_hint=FILE_NAME)
    elapsed = time.perf_counter() - started
    assert got.sha256 == expected.sha256 and got.fetched == got.size
    return elapsed


_CHILD = """
import sys
from pathlib import Path
import httpx
from modeldex.hub.download import Expected, download_file
def stop_half_way(done, total):
    if total and done > total // 2:
        print("half", flush=True)
        import time
        time.sleep(60)  # the parent kills us here, mid-transfer
with httpx.Client(timeout=60) as http:
    download_file(http, sys.argv[1], Path(sys.argv[2]), name_hint=sys.argv[3], on_progress=stop_half_way)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512, help="size of the file served (default 512)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (best is kept; default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.dir))
    server: subprocess.Popen[bytes] | None = None
    try:
        model = work / "library" / FILE_NAME
        model.parent.mkdir()
        size = args.size_mb << 20
        sha256 = make_file(model, size)
        server, base = start_server(make_index(work / "index.db", model, sha256), work)
        url = f"{base}/api/download/models/{VERSION_ID}"
        expected = Expected.from_api(size / 1024, sha256)
        out = work / "out"
        best_base = best_ours = float("inf")
        with httpx.Client(timeout=60) as http:
            ours(http, url, out / "warm", expected)  # warm the page cache and the connection
            for run in range(args.runs):
                for side in ("base", "ours") if run % 2 == 0 else ("ours", "base"):
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir(parents=True)
                    if side == "base":
                        best_base = min(best_base, baseline(http, url, out / FILE_NAME))
                    else:
                        best_ours = min(best_ours, ours(http, url, out / "dl", expected))
            mb = size / 1e6
            ratio = best_base / best_ours
            print(f"file: {args.size_mb} MiB served by modeldex serve ({base})")
            print(f"plain httpx stream to a file : {mb / best_base:8.0f} MB/s")
            print(f"download_file (verified)     : {mb / best_ours:8.0f} MB/s")
            print(f"ratio ours/baseline          : {ratio:8.2f}   (goal >= 0.9) {'ok' if ratio >= 0.9 else 'MISSED'}")

            shutil.rmtree(out, ignore_errors=True)
            folder = out / "resume"
            folder.mkdir(parents=True)
            kept = int(size * 0.37)
            with open(model, "rb") as src:
                (folder / (FILE_NAME + PART_SUFFIX)).write_bytes(src.read(kept))
            got = download_file(http, url, folder, expected=expected, name_hint=FILE_NAME)
            missing = size - kept
            print(
                f"resume after a stop at 37 %  : fetched {got.fetched:,} of {missing:,} missing bytes "
                f"(extra {got.fetched - missing:,}; goal 0) {'ok' if got.fetched == missing else 'MISSED'}"
            )

        folder = out / "killed"
        folder.mkdir(parents=True)
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, str(folder), FILE_NAME], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        on_disk = (folder / (FILE_NAME + PART_SUFFIX)).stat().st_size
        with httpx.Client(timeout=60) as http:
            got = download_file(http, url, folder, expected=expected, name_hint=FILE_NAME)
        missing = size - on_disk
        print(
            f"resume after kill -9 at 50 % : {on_disk:,} bytes were on disk; fetched {got.fetched:,} "
            f"(extra {got.fetched - missing:,}; goal 0) {'ok' if got.fetched == missing else 'MISSED'}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
