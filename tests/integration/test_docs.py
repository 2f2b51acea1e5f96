"""docs/CONFIGURATION.md is generated from the property table (`make docs`):
it must be what the binary prints now. The README's source tour names every
source file."""

from __future__ import annotations

import re
import subprocess

from support import REPO, dmpflow_path


def test_configuration_reference_is_up_to_date():
    out = subprocess.run([str(dmpflow_path()), "--help-config", "--markdown"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    doc = (REPO / "docs" / "CONFIGURATION.md").read_text()
    assert doc == out, "docs/CONFIGURATION.md is out of date: run `make docs`"
    for section in ("[input]", "[state]", "[output]", "[http]", "[log]", "[measure NAME]",
                    "[window NAME]", "[group NAME]", "[pattern NAME]"):
        assert f"## {section}" in doc, section


def test_source_tour_lists_every_source_file():
    """The README's source tour names every src/*.c (and no file that is gone)."""
    readme = (REPO / "README.md").read_text()
    tour = readme[readme.index("## Source tour"):]
    tour = tour[:tour.index("\n## ")] if "\n## " in tour else tour
    named = set(re.findall(r"`src/([a-z_]+\.c)`", tour))
    on_disk = {p.name for p in (REPO / "src").glob("*.c")}
    assert on_disk - named == set(), f"not in the README's source tour: {sorted(on_disk - named)}"
    assert named - on_disk == set(), f"in the tour but not in src/: {sorted(named - on_disk)}"
    assert (REPO / "docs" / "ARCHITECTURE.md").exists()
