"""``make book``'s configuration: the executed notebooks of each profile in an execution cache of their own.

The book executes its chapters once and keeps the results in a jupyter-cache (``execute_notebooks: cache``).
jupyter-cache recognises a notebook by its code alone, not by the environment it ran in: after switching
``COURSE_PROFILE`` (or ``COURSE_OVERRIDES``) a build would show the figures of whichever profile ran first. So
``make book`` builds with a copy of ``_config.yml`` whose ``execute.cache`` names a folder per profile:

    _build/.jupyter_cache/<profile>-<12 hex digits of the profile's sizes>/

keyed on the sizes the chapters will really use (the profile after COURSE_OVERRIDES; two spellings of the same
sizes share a folder, and a release that changes a profile's sizes starts a new one). A changed cache path also
makes Sphinx read every page again, so no page keeps another profile's outputs.

    python -m course_utils.instructor.book_config [ROOT]   # writes ROOT/_build/_config.<key>.yml and prints its path
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from .. import config

CACHE_ROOT = Path("_build") / ".jupyter_cache"  # jupyter-book's own default folder; one sub-folder per profile


def cache_key(profile: config.Profile | None = None) -> str:
    """``<profile name>-<hash>``: the profile (default: ``config.get_profile()``, which reads COURSE_PROFILE and
    COURSE_OVERRIDES) and a digest of every one of its sizes.

    >>> cache_key(config.PROFILES["smoke"]).startswith("smoke-")
    True
    """
    profile = profile or config.get_profile()
    sizes = json.dumps(profile.as_dict(), sort_keys=True, default=str)
    return f"{profile.name}-{hashlib.sha256(sizes.encode()).hexdigest()[:12]}"


def cache_path(root: str | Path = ".", profile: config.Profile | None = None) -> Path:
    """The execution cache of ``profile`` for the book at ``root`` (an absolute path)."""
    return (Path(root) / CACHE_ROOT / cache_key(profile)).resolve()


def write_config(root: str | Path = ".", profile: config.Profile | None = None) -> Path:
    """Write ``root/_build/_config.<key>.yml``: ``root/_config.yml`` with ``execute.cache`` set to ``cache_path``;
    return its path (for ``jupyter-book build ROOT --config PATH``)."""
    import yaml

    root = Path(root)
    book = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    book.setdefault("execute", {})["cache"] = str(cache_path(root, profile))
    out = root / "_build" / f"_config.{cache_key(profile)}.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `python -m course_utils.instructor.book_config` for `make book`: _config.yml with the "
              "execution cache of one profile.\n# Edit _config.yml, not this file.\n")
    out.write_text(header + yaml.safe_dump(book, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(".")
    path = write_config(root)
    print(f"execution cache of this profile: {cache_path(root)}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
