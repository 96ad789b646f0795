"""The source distribution (make sdist) carries the crate it builds: its
sources, Cargo.toml, Cargo.lock, the header and the licences."""

from __future__ import annotations

import tarfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def _members(sdist: Path) -> dict[str, tarfile.TarInfo]:
    root = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        return {m.name.removeprefix(root + "/"): m for m in archive.getmembers()}


def test_the_sdist_carries_the_crate(sdist: Path) -> None:
    members = _members(sdist)
    for name in (
        "Cargo.toml",
        "Cargo.lock",
        "include/last_call.h",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ):
        assert f"rust/{name}" in members, name
    for source in sorted((REPOSITORY / "src").rglob("*.rs")):
        assert f"rust/{source.relative_to(REPOSITORY)}" in members, source
    for source in sorted((REPOSITORY / "crates").rglob("*")):
        if source.suffix in (".rs", ".lua") or source.name == "Cargo.toml":
            assert f"rust/{source.relative_to(REPOSITORY)}" in members, source
    for name in ("setup.py", "pyproject.toml", "README.md", "src/last_call/_native.py"):
        assert name in members, name


def test_the_sdist_holds_files_not_links(sdist: Path) -> None:
    links = [
        name
        for name, member in _members(sdist).items()
        if member.issym() or member.islnk()
    ]
    assert links == []


def test_the_licences_ship_in_the_sdist(sdist: Path) -> None:
    members = _members(sdist)
    assert members["LICENSE-MIT"].size > 0 and members["LICENSE-APACHE"].size > 0
    with tarfile.open(sdist) as archive:
        root = sdist.name.removesuffix(".tar.gz")
        extracted = archive.extractfile(f"{root}/LICENSE-MIT")
        assert extracted is not None
        assert b"Permission is hereby granted" in extracted.read()


def test_the_sdist_leaves_out_the_build_leftovers(sdist: Path) -> None:
    names = list(_members(sdist))
    assert not [
        n
        for n in names
        if n.endswith(".so") or "/target/" in n or n.startswith("build/")
    ]
