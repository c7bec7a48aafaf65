"""Specification of course_utils.pretrained: a checkpoint is used only when its SHA-256 matches, and
every failure says which file, which hashes, and what to do."""

import hashlib
import http.server
import threading
from functools import partial

import pytest
import torch

from course_utils import pretrained
from course_utils.pretrained import PRETRAINED, ChecksumMismatchError, load_pretrained, sha256sum


@pytest.fixture
def checkpoint(tmp_path):
    """A small real checkpoint file and its SHA-256."""
    path = tmp_path / "src" / "encoder.pt"
    path.parent.mkdir()
    torch.save({"weight": torch.arange(10.0)}, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(checkpoint):
    """An HTTP server on localhost that serves the checkpoint's folder (no internet needed)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = partial(Quiet, directory=str(checkpoint[0].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_sha256sum_matches_hashlib(checkpoint):
    path, digest = checkpoint
    assert sha256sum(path) == digest
    assert sha256sum(path, chunk=7) == digest  # chunked reading gives the same hash


def test_local_file_with_the_right_hash_is_used_in_place(checkpoint, capsys):
    path, digest = checkpoint
    assert load_pretrained(path, digest) == path
    assert load_pretrained(str(path), digest.upper()) == path  # hex case does not matter
    assert "verified" in capsys.readouterr().out
    assert torch.equal(torch.load(path, weights_only=True)["weight"], torch.arange(10.0))


def test_local_file_is_copied_into_dest_dir(checkpoint, tmp_path):
    path, digest = checkpoint
    out = load_pretrained(path, digest, tmp_path / "dest")
    assert out == tmp_path / "dest" / "encoder.pt"
    assert sha256sum(out) == digest


def test_wrong_hash_names_file_both_hashes_and_fix(checkpoint):
    path, digest = checkpoint
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError) as info:
        load_pretrained(path, wrong)
    message = str(info.value)
    assert str(path) in message and digest in message and wrong in message
    assert "os.remove" in message
    assert path.exists()  # a local file that does not match is never deleted


def test_truncated_file_is_refused(checkpoint):
    path, digest = checkpoint
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ChecksumMismatchError):
        load_pretrained(path, digest)


def test_missing_file_says_where_it_looked(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_pretrained(missing, None)


def test_no_hash_prints_the_actual_one(checkpoint, capsys):
    path, digest = checkpoint
    assert load_pretrained(path, None) == path
    assert digest in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "0" * 63])
def test_malformed_hash_is_a_value_error(checkpoint, bad):
    with pytest.raises(ValueError, match="64 hexadecimal"):
        load_pretrained(checkpoint[0], bad)


def test_bad_source_type_is_a_type_error():
    with pytest.raises(TypeError, match="URL or a file path"):
        load_pretrained(42, None)


def test_download_verifies_and_is_not_repeated(checkpoint, server, tmp_path, capsys):
    path, digest = checkpoint
    dest = tmp_path / "downloads"
    out = load_pretrained(f"{server}/encoder.pt", digest, dest, progress=False)
    assert out == dest / "encoder.pt" and sha256sum(out) == digest
    capsys.readouterr()
    path.unlink()  # the server can no longer serve it: a second call must not download
    assert load_pretrained(f"{server}/encoder.pt", digest, dest, progress=False) == out
    assert "not downloading again" in capsys.readouterr().out


def test_download_with_wrong_hash_is_deleted(checkpoint, server, tmp_path):
    dest = tmp_path / "downloads"
    with pytest.raises(ChecksumMismatchError, match="was deleted"):
        load_pretrained(f"{server}/encoder.pt", "f" * 64, dest, progress=False)
    assert list(dest.iterdir()) == []  # neither the file nor a .part left behind


def test_failed_download_says_what_to_do(server, tmp_path):
    dest = tmp_path / "downloads"
    with pytest.raises(RuntimeError, match="Could not download"):
        load_pretrained(f"{server}/missing.pt", None, dest, progress=False)
    assert list(dest.iterdir()) == []


def test_url_needs_a_dest_dir():
    with pytest.raises(ValueError, match="dest_dir"):
        load_pretrained("https://example.org/encoder.pt", None)


def test_registered_names_resolve(checkpoint, server, tmp_path, monkeypatch):
    path, digest = checkpoint
    monkeypatch.setitem(pretrained.PRETRAINED, "demo", (f"{server}/encoder.pt", digest))
    assert sha256sum(load_pretrained("demo", None, tmp_path, progress=False)) == digest


def test_registry_entries_are_https_urls_with_full_hashes():
    for name, (url, digest) in PRETRAINED.items():  # empty until checkpoints are published
        assert url.startswith("https://"), name
        assert len(digest) == 64 and int(digest, 16) >= 0, name
