"""Pretrained checkpoints from a URL or a local path, verified by SHA-256 before anything loads them.

    path = load_pretrained("https://.../cifar10_resnet18_encoder.pt", sha256="3f5a...", dest_dir=folder)
    encoder.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

A checkpoint is code-adjacent data: a truncated download or a file from another version of the course
loads into garbage (or fails far from the cause). So every file is hashed, and a mismatch stops with an
error that names the file, both hashes and the fix. ``PRETRAINED`` maps a name to ``(url, sha256)``; it
is empty until the course publishes its own checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

# name -> (url, sha256). Empty: no checkpoint has been published yet. Train your own (chapter 4).
PRETRAINED: dict[str, tuple[str, str]] = {}


class ChecksumMismatchError(RuntimeError):
    """A file's SHA-256 differs from the expected one (truncated, corrupted, or another version)."""


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file as 64 lowercase hex digits (read in 1 MiB chunks: large files are fine)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and urlparse(source).scheme in ("http", "https")


def _verify(path: Path, expected: str | None, fix: str) -> None:
    actual = sha256sum(path)
    if expected is None:
        print(f"{path.name}: SHA-256 not checked (none given); it is {actual}. Pass sha256={actual!r} to pin it.")
        return
    if actual != expected.strip().lower():
        raise ChecksumMismatchError(
            f"{path} has SHA-256 {actual}, but {expected.strip().lower()} was expected: the file is truncated, "
            f"corrupted, or a different checkpoint. {fix}"
        )
    print(f"{path.name}: SHA-256 verified ({actual[:12]}...)")


def load_pretrained(source: str | Path, sha256: str | None = None, dest_dir: str | Path | None = None, *,
                    progress: bool = True) -> Path:  # fmt: skip
    """Return the local path of a verified checkpoint file.

    source    an http(s) URL (downloaded into ``dest_dir``, with a progress bar), a local file path
              (used in place, or copied into ``dest_dir`` when one is given), or a name in ``PRETRAINED``.
    sha256    the expected SHA-256 (64 hex digits). None skips the check and prints the actual hash.
    dest_dir  where downloads and copies go (created if needed); required for a URL.
    A file already in ``dest_dir`` with the right hash is not downloaded again. A download whose hash
    does not match is deleted; a local file that does not match is left alone. Raises
    ``FileNotFoundError`` for a missing local file and ``ChecksumMismatchError`` for a wrong hash.
    """
    if isinstance(source, str) and source in PRETRAINED:
        source, expected = PRETRAINED[source]
        sha256 = sha256 or expected
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be a URL or a file path (str or Path), got {type(source).__name__}.")
    if sha256 is not None and (len(sha256.strip()) != 64 or any(c not in "0123456789abcdef" for c in sha256.strip().lower())):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}.")

    if _is_url(source):
        if dest_dir is None:
            raise ValueError("Downloading needs a dest_dir, e.g. dest_dir=checkpoint_dir(profile) / 'pretrained'.")
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        name = Path(urlparse(source).path).name or "checkpoint.pt"
        path = dest_dir / name
        if path.exists() and sha256 is not None and sha256sum(path) == sha256.strip().lower():
            print(f"{path} is already here and verified: not downloading again")
            return path
        tmp = path.with_name(path.name + ".part")  # a killed download never leaves a file under `path`
        try:
            from torch.hub import download_url_to_file

            download_url_to_file(source, str(tmp), progress=progress)
        except Exception as err:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"Could not download {source} ({err}). Check the URL and your network, or download "
                               f"the file by hand and pass its local path instead.") from err  # fmt: skip
        try:
            _verify(tmp, sha256, f"The download from {source} was deleted; run the cell again, and if it fails "
                                 f"again, check that the URL and the sha256 belong together.")  # fmt: skip
        except ChecksumMismatchError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        return path

    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Check the path (is Google Drive mounted?), or train "
                                f"one first: chapter 4 saves it to checkpoint_dir(profile).")  # fmt: skip
    _verify(path, sha256, f"Delete it or copy the file again (os.remove({str(path)!r})), or pass the sha256 "
                          f"that belongs to this file.")  # fmt: skip
    if dest_dir is not None:
        dest = Path(dest_dir) / path.name
        if dest.resolve() != path.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        return dest
    return path
