"""The built wheel (make wheel): one wheel for every Python 3, tagged
py3-none-manylinux, at most 2.5 MB, with a stripped library old enough for
glibc 2.17, the licences and complete metadata."""

from __future__ import annotations

import email.parser
import io
import platform
import re
import zipfile
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

ARCH = platform.machine()
# About 2.2 MB since TLS to Redis (rustls, ring), 1.3 MB with the Redis
# client alone, 0.6 MB before it: a bound that still catches a library left
# unstripped (about 12 MB) or a second copy of it (docs/packaging.md).
MAX_WHEEL_BYTES = 2_500_000
OLDEST_GLIBC = (2, 17)
LIBRARY = "last_call/liblast_call.so"


def _metadata(wheel: Path) -> email.message.Message:
    version = parse_wheel_filename(wheel.name)[1]
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"last_call-{version}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def _library(wheel: Path) -> ELFFile:
    with zipfile.ZipFile(wheel) as archive:
        return ELFFile(io.BytesIO(archive.read(LIBRARY)))


def test_the_wheel_is_tagged_for_every_python_3_and_manylinux2014(wheel: Path) -> None:
    name, _, _, tags = parse_wheel_filename(wheel.name)
    assert name == "last-call"
    assert tags == {
        Tag("py3", "none", f"manylinux_2_17_{ARCH}"),
        Tag("py3", "none", f"manylinux2014_{ARCH}"),
    }
    version = parse_wheel_filename(wheel.name)[1]
    with zipfile.ZipFile(wheel) as archive:
        wheel_file = archive.read(f"last_call-{version}.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false" in wheel_file
    assert sorted(re.findall(r"^Tag: (.+)$", wheel_file, re.MULTILINE)) == [
        f"py3-none-manylinux2014_{ARCH}",
        f"py3-none-manylinux_2_17_{ARCH}",
    ]


def test_the_wheel_is_at_most_2_5_mb(wheel: Path) -> None:
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, f"{wheel.stat().st_size} bytes"


def test_the_wheel_holds_one_library_under_one_plain_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        libraries = [n for n in archive.namelist() if ".so" in n]
    # One file for every interpreter: no cpython-3XX suffix. auditwheel
    # grafted nothing (the library needs only glibc).
    assert libraries == [LIBRARY]


def test_the_library_is_stripped_but_exports_the_c_abi(wheel: Path) -> None:
    library = _library(wheel)
    sections = [section.name for section in library.iter_sections()]
    assert ".symtab" not in sections
    assert not [name for name in sections if name.startswith(".debug")], sections
    dynsym = library.get_section_by_name(".dynsym")
    assert isinstance(dynsym, SymbolTableSection)
    exported = {symbol.name for symbol in dynsym.iter_symbols()}
    assert {
        "gs_increment_active_streams",
        "gs_wait_for_streams",
        "gs_version",
    } <= exported


def test_the_library_needs_no_glibc_newer_than_2_17(wheel: Path) -> None:
    library = _library(wheel)
    needed = set()
    for section in library.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for auxiliary in auxiliaries:
                    match = re.fullmatch(
                        r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", auxiliary.name
                    )
                    if match:
                        needed.add((int(match.group(1)), int(match.group(2))))
    assert needed, "no versioned glibc symbol found: is this the right library?"
    assert max(needed) <= OLDEST_GLIBC, sorted(needed)


def test_the_licences_ship_in_the_wheel(wheel: Path) -> None:
    version = parse_wheel_filename(wheel.name)[1]
    with zipfile.ZipFile(wheel) as archive:
        mit = archive.read(
            f"last_call-{version}.dist-info/licenses/LICENSE-MIT"
        ).decode()
        apache = archive.read(
            f"last_call-{version}.dist-info/licenses/LICENSE-APACHE"
        ).decode()
    assert "Permission is hereby granted" in mit
    assert "Apache License" in apache and "Version 2.0" in apache
    assert _metadata(wheel)["License-Expression"] == "MIT OR Apache-2.0"


def test_the_metadata_describes_the_package_on_its_own(wheel: Path) -> None:
    metadata = _metadata(wheel)
    classifiers = metadata.get_all("Classifier", [])
    for version in ("3.9", "3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Framework :: Flask" in classifiers
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL", []))
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)
    # No internal "test" extra is published.
    assert "test" not in (metadata.get_all("Provides-Extra") or [])
    # The index page is the package README, and it stands alone.
    description = metadata.get_payload()
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "pip install last-call" in description
    assert "repository's README" not in description
