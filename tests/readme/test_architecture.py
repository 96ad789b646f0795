"""docs/architecture.md against the workspace: its table of who may depend
on whom names every crate of the workspace, and each crate's declared
dependencies on the others are among those the table allows. A crate added
or a layer crossed without the page saying so fails here."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _crates() -> dict[str, set[str]]:
    """Each workspace crate (crates/* and the root), with the workspace
    crates among its normal dependencies."""
    manifests = [ROOT / "Cargo.toml", *sorted(ROOT.glob("crates/*/Cargo.toml"))]
    parsed = {path: tomllib.loads(path.read_text()) for path in manifests}
    names = {data["package"]["name"] for data in parsed.values()}
    return {
        data["package"]["name"]: {dep for dep in data.get("dependencies", {}) if dep in names}
        for data in parsed.values()
    }


def _table() -> dict[str, str]:
    """The "Who may depend on whom" table: crate -> its "may depend on" cell."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Who may depend on whom", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        named = re.fullmatch(r"`(last-call[a-z-]*)`", cells[0]) if cells else None
        if named:
            rows[named.group(1)] = cells[1]
    return rows


def test_the_layer_table_names_every_crate_of_the_workspace() -> None:
    assert set(_table()) == set(_crates())


def test_each_crate_depends_only_on_the_crates_its_row_allows() -> None:
    table = _table()
    short = {name: name.removeprefix("last-call-") for name in _crates()}
    for crate, deps in _crates().items():
        allowed = table[crate]
        everything = re.search(r"\ball (\w+)\b", allowed)
        if everything:
            # "all five": the published crate over every inner one.
            words = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
            assert words.get(everything.group(1)) == len(table) - 1, allowed
            continue
        for dep in deps:
            assert re.search(rf"\b{short[dep]}\b", allowed), f"{crate} depends on {dep}; its row allows: {allowed}"
