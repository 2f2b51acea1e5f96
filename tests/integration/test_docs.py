"""docs/CONFIGURATION.md is generated from the property table (`make docs`):
it must be what the binary prints now."""

from __future__ import annotations

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
