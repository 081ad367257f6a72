"""Tests for finding, verifying and downloading dataset files, against a local HTTP server only."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import shared_datasets

from genframe.contracts.errors import DataError
from genframe.data import download as dl
from genframe.data.download import ensure_dataset_files, resolve_data_root, sha256_of_content
from genframe.data.mnist import MNIST

# The two small label files are enough to exercise downloading; images would only add time.
LABELS = ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz")
LABEL_FILES = {name: MNIST.checksums[name] for name in LABELS}


class _MirrorHandler(BaseHTTPRequestHandler):
    """Serves ``/<kind>/<file>``: good and corrupt copies, HTTP errors, a cut-off body, a stall."""

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        server: _MirrorServer = self.server  # type: ignore[assignment]
        server.requests.append(self.path)
        kind, _, name = self.path.strip("/").partition("/")
        if kind in ("500", "404"):
            self.send_error(int(kind))
            return
        if kind == "slow":  # stalls far longer than the client's timeout, so a wait for it cannot pass unseen
            time.sleep(8.0)
            self.send_error(503)
            return
        source = server.folders.get("corrupt" if kind == "corrupt" else "good", Path("/nonexistent")) / name
        if not source.is_file():
            self.send_error(404)
            return
        body = source.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # "truncated" promises the full length but hangs up halfway, like a dropped connection.
        self.wfile.write(body[: len(body) // 2] if kind == "truncated" else body)
        self.close_connection = kind == "truncated"

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class _MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    folders: dict[str, Path]
    requests: list[str]


@pytest.fixture(scope="module")
def mirror_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good/: real label files; corrupt/: valid gzip IDX files whose content differs by one label."""
    base = tmp_path_factory.mktemp("mirror")
    good, corrupt = base / "good", base / "corrupt"
    good.mkdir()
    corrupt.mkdir()
    for name in LABELS:
        shutil.copy(shared_datasets() / "mnist" / name, good / name)
        content = bytearray(gzip.decompress((good / name).read_bytes()))
        content[8] = (content[8] + 1) % 10  # first label changed: still a valid file, wrong checksum
        (corrupt / name).write_bytes(gzip.compress(bytes(content)))
    return {"good": good, "corrupt": corrupt}


@pytest.fixture(scope="module")
def server(mirror_files: dict[str, Path]) -> Iterator[_MirrorServer]:
    httpd = _MirrorServer(("127.0.0.1", 0), _MirrorHandler)
    httpd.folders = mirror_files
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def mirror(server: _MirrorServer) -> Iterator[Callable[[str], str]]:
    """``mirror("good")`` -> that mirror's base URL; the request log starts empty for each test."""
    server.requests.clear()
    host, port = server.server_address[:2]
    yield lambda kind: f"http://{host}:{port}/{kind}/"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENFRAME_OFFLINE", raising=False)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens here any more: connection refused


def _sha256_of_decompressed(path: Path) -> str:
    return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()


def test_download_into_empty_root(tmp_path: Path, mirror, mirror_files, server) -> None:
    root = tmp_path / "fresh" / "root"  # does not exist yet: must be created
    paths = ensure_dataset_files("mnist", LABEL_FILES, [mirror("good")], root=root)
    assert set(paths) == set(LABELS)
    for name, path in paths.items():
        assert path == root / "mnist" / name
        assert path.read_bytes() == (mirror_files["good"] / name).read_bytes()
        assert _sha256_of_decompressed(path) == LABEL_FILES[name]
    # Only the final files remain: no temp files beside them.
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(LABELS)
    # A second call finds them on disk and does not download again.
    server.requests.clear()
    assert ensure_dataset_files("mnist", LABEL_FILES, [mirror("good")], root=root) == paths
    assert server.requests == []


def test_mirrors_are_tried_in_order_until_one_verifies(tmp_path: Path, mirror, server) -> None:
    mirrors = [mirror("500"), mirror("corrupt"), mirror("good")]
    paths = ensure_dataset_files("mnist", LABEL_FILES, mirrors, root=tmp_path)
    for name, path in paths.items():
        assert _sha256_of_decompressed(path) == LABEL_FILES[name]
    first = LABELS[0]
    assert server.requests[:3] == [f"/500/{first}", f"/corrupt/{first}", f"/good/{first}"]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(LABELS)


def test_all_mirrors_failing_names_each_and_leaves_nothing(tmp_path: Path, mirror, server) -> None:
    refused = _closed_port_url()
    mirrors = [mirror("500"), mirror("404"), mirror("corrupt"), mirror("truncated"), refused]
    with pytest.raises(DataError) as info:
        ensure_dataset_files("mnist", LABEL_FILES, mirrors, root=tmp_path)
    message = str(info.value)
    name = LABELS[0]
    assert "\n" not in message
    for url in mirrors:
        assert url + name in message
    assert "HTTP 500" in message and "HTTP 404" in message
    assert "checksum mismatch" in message
    assert "damaged gzip" in message  # the truncated body
    assert "Connection" in message  # refused connection, reported by its error name
    assert "GENFRAME_DATA_DIR" in message and f"mnist/{name}" in message
    # Neither the final file nor any temp file is left behind after the failures.
    assert list((tmp_path / "mnist").iterdir()) == []


def test_stalled_mirror_times_out_and_falls_through(tmp_path: Path, mirror) -> None:
    start = time.monotonic()
    files = {LABELS[0]: LABEL_FILES[LABELS[0]]}
    paths = ensure_dataset_files("mnist", files, [mirror("slow"), mirror("good")], root=tmp_path, timeout=0.3)
    assert time.monotonic() - start < 4.0  # did not wait the 8 s for the stalled mirror to answer
    assert paths[LABELS[0]].is_file()


def test_present_file_with_wrong_checksum_is_not_overwritten(
    tmp_path: Path, mirror, mirror_files, server
) -> None:
    name = LABELS[0]
    (tmp_path / "mnist").mkdir()
    damaged = tmp_path / "mnist" / name
    shutil.copy(mirror_files["corrupt"] / name, damaged)
    before = damaged.read_bytes()
    with pytest.raises(DataError) as info:
        ensure_dataset_files("mnist", LABEL_FILES, [mirror("good")], root=tmp_path)
    message = str(info.value)
    assert str(damaged) in message
    assert LABEL_FILES[name] in message  # expected
    assert _sha256_of_decompressed(damaged) in message  # actual
    assert "delete it" in message and "\n" not in message
    assert damaged.read_bytes() == before
    assert server.requests == []


def test_missing_file_without_download_is_a_data_error(tmp_path: Path, mirror, server) -> None:
    with pytest.raises(DataError) as info:
        ensure_dataset_files("mnist", LABEL_FILES, [mirror("good")], root=tmp_path, download=False)
    message = str(info.value)
    assert f"mnist/{LABELS[0]}" in message and "GENFRAME_DATA_DIR" in message
    assert server.requests == []
    assert not (tmp_path / "mnist").exists()


def test_offline_env_var_disables_downloads(tmp_path: Path, mirror, server, monkeypatch) -> None:
    monkeypatch.setenv("GENFRAME_OFFLINE", "1")
    with pytest.raises(DataError, match="downloads are disabled"):
        ensure_dataset_files("mnist", LABEL_FILES, [mirror("good")], root=tmp_path, download=True)
    assert server.requests == []


def test_decompressed_file_is_accepted(tmp_path: Path, mirror, mirror_files, server) -> None:
    name = LABELS[0]
    raw = tmp_path / "mnist" / name.removesuffix(".gz")
    raw.parent.mkdir()
    raw.write_bytes(gzip.decompress((mirror_files["good"] / name).read_bytes()))
    paths = ensure_dataset_files("mnist", {name: LABEL_FILES[name]}, [mirror("good")], root=tmp_path)
    assert paths == {name: raw}
    assert server.requests == []


def test_unwritable_root_is_a_clear_error(tmp_path: Path, mirror, server) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")  # a file where the data folder should be: fails even for root
    with pytest.raises(DataError, match="not a writable folder.*GENFRAME_DATA_DIR"):
        ensure_dataset_files("mnist", LABEL_FILES, [mirror("good")], root=not_a_folder)
    assert server.requests == []


def test_shared_read_only_folder_verifies_in_place() -> None:
    shared = shared_datasets()
    paths = ensure_dataset_files("mnist", dict(MNIST.checksums), [], root=shared, download=False)
    assert set(paths) == set(MNIST.checksums)
    assert all(path.parent == shared / "mnist" for path in paths.values())


@pytest.fixture()
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every content hash computed through the download module."""
    calls: list[Path] = []
    real_hash = dl.sha256_of_content

    def counting_hash(path: Path) -> str:
        calls.append(Path(path))
        return real_hash(path)

    monkeypatch.setattr(dl, "sha256_of_content", counting_hash)
    return calls


def test_verified_checksums_are_cached_until_the_file_changes(
    tmp_path: Path, mirror_files, hash_calls: list[Path]
) -> None:
    name = LABELS[0]
    files = {name: LABEL_FILES[name]}
    path = tmp_path / "mnist" / name
    path.parent.mkdir()
    shutil.copy(mirror_files["good"] / name, path)
    for _ in range(3):
        assert ensure_dataset_files("mnist", files, [], root=tmp_path, download=False) == {name: path}
    assert hash_calls == [path]  # hashed once, then trusted while size and mtime are unchanged

    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match="wrong checksum"):
        ensure_dataset_files("mnist", files, [], root=tmp_path, download=False)
    assert hash_calls == [path, path]


def test_downloaded_files_are_not_hashed_again(tmp_path: Path, mirror, hash_calls: list[Path]) -> None:
    name = LABELS[0]
    files = {name: LABEL_FILES[name]}
    ensure_dataset_files("mnist", files, [mirror("good")], root=tmp_path)
    assert len(hash_calls) == 1  # the temp file, verified before it was renamed into place
    ensure_dataset_files("mnist", files, [], root=tmp_path, download=False)
    assert len(hash_calls) == 1


def test_sha256_of_content_hashes_decompressed_bytes(tmp_path: Path, mirror_files) -> None:
    gz = mirror_files["good"] / LABELS[0]
    raw = tmp_path / "raw"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    assert sha256_of_content(gz) == sha256_of_content(raw) == LABEL_FILES[LABELS[0]]
    assert sha256_of_content(gz) != hashlib.sha256(gz.read_bytes()).hexdigest()


def test_resolve_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GENFRAME_DATA_DIR", raising=False)
    assert resolve_data_root(None) == tmp_path / "home" / ".cache" / "genframe" / "datasets"
    monkeypatch.setenv("GENFRAME_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert resolve_data_root("~/data") == tmp_path / "home" / "data"
