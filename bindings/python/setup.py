"""The parts of the build that pyproject.toml cannot declare.

* The version is the crate's, read from Cargo.toml: one place for both.
* The native library is a plain C ABI library loaded with ctypes, with no
  CPython ABI in it. It ships under one plain file name
  (``last_call/liblast_call.so``) and the wheel is tagged ``py3-none-<platform>``,
  so one wheel per platform serves every Python.
* It is built without debug info and stripped (the repository's release
  profile keeps debug info for local benchmarks only).
* The sdist carries the crate (``rust/``): its sources, Cargo.toml,
  Cargo.lock, the header and the licences, so that it builds on its own.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

# The build runs on every supported Python, 3.9 and 3.10 included (there the
# build requirement tomli stands in for tomllib).
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
# In an sdist the crate travels in rust/; in the repository it is the root.
SDIST_CRATE = "rust"
CRATE = SDIST_CRATE if (HERE / SDIST_CRATE / "Cargo.toml").is_file() else "../.."

# What the sdist takes from the crate (relative to it): enough to build the
# library, nothing the build does not read. The benches are listed as
# targets in Cargo.toml, so cargo needs their files to load the manifest.
CRATE_FILES = [
    "Cargo.toml",
    "Cargo.lock",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "include/last_call.h",
]
# The workspace's internal crates (crates/*) are path dependencies of the
# library: their manifests and sources travel too.
CRATE_TREES = [
    ("src", "*.rs"),
    ("benches", "*.rs"),
    ("crates", "*.rs"),
    ("crates", "Cargo.toml"),
    # The shared store's Redis scripts, compiled in with include_str!.
    ("crates", "*.lua"),
]

LIBRARY_FILE = "liblast_call.so"

# Built from the repository, the library gets a target directory of its own:
# its profile (no debug info, stripped) differs from `cargo build --release`,
# and in one target/ each build would redo the other's artifacts.
if CRATE == "../.." and "CARGO_TARGET_DIR" not in os.environ:
    os.environ["CARGO_TARGET_DIR"] = str(HERE.parent.parent / "target" / "python")


def crate_version() -> str:
    with open(HERE / CRATE / "Cargo.toml", "rb") as manifest:
        return str(tomllib.load(manifest)["package"]["version"])


class BuildPlainLibrary(build_rust):
    """Installs the library as ``last_call/liblast_call.so`` instead of under
    the interpreter's extension suffix (``.cpython-311-x86_64-linux-gnu.so``)."""

    def get_dylib_ext_path(self, ext: RustExtension, target_fname: str) -> str:
        suffixed = Path(super().get_dylib_ext_path(ext, target_fname))
        return str(suffixed.with_name(LIBRARY_FILE))


class PlatformWheel(bdist_wheel):
    """Tags the wheel ``py3-none-<platform>``: it holds no CPython extension."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class SdistWithCrate(sdist):
    """Copies the crate into the sdist's ``rust/`` directory."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        # The package's LICENSE files are links to the repository's: put the
        # files themselves in the archive, not links that point outside it.
        for name in ("LICENSE-MIT", "LICENSE-APACHE"):
            target = Path(base_dir, name)
            if target.is_symlink() or target.exists():
                target.unlink()
            shutil.copyfile(HERE / name, target)
        crate = HERE / CRATE
        destination = Path(base_dir, SDIST_CRATE)
        for name in CRATE_FILES:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(crate / name, destination / name)
        for tree, pattern in CRATE_TREES:
            for source in sorted((crate / tree).rglob(pattern)):
                target = destination / source.relative_to(crate)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)


setup(
    version=crate_version(),
    rust_extensions=[
        RustExtension(
            "last_call.liblast_call",
            path=os.path.join(CRATE, "Cargo.toml"),
            binding=Binding.NoBinding,
            # No debug info in the shipped library, and no symbol table
            # beyond the exported (dynamic) symbols. No LTO: it would shrink
            # the library by a fifth at the cost of a long single-threaded
            # link on every build (docs/packaging.md has the figures).
            args=[
                "--config",
                "profile.release.debug=false",
                "--config",
                'profile.release.strip="symbols"',
            ],
            strip=Strip.All,
            # Build exactly what Cargo.lock pins, in the sdist as here.
            cargo_manifest_args=["--locked"],
        )
    ],
    cmdclass={
        "build_rust": BuildPlainLibrary,
        "bdist_wheel": PlatformWheel,
        "sdist": SdistWithCrate,
    },
)
