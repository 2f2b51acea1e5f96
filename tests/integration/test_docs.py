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


def test_every_command_help_prints_its_usage():
    """`dmpflow CMD --help` (and -h, anywhere among the arguments) prints that
    command's usage on stdout and exits 0, without running the command;
    `dmpflow --help` lists them all."""
    full = subprocess.run([str(dmpflow_path()), "--help"], capture_output=True, text=True)
    assert full.returncode == 0 and "dmpflow CMD --help" in full.stdout
    for cmd, args in {"run": ["--help"], "check": ["-h"], "demo": ["--help"], "gen": ["--help"],
                      "state": ["--help"], "cat": ["-t", "x", "--help"]}.items():
        r = subprocess.run([str(dmpflow_path()), cmd, *args], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout.startswith("usage:\n") and f"  dmpflow {cmd} " in r.stdout, (cmd, r.stdout)
        assert r.stderr == "", (cmd, r.stderr)
        other = {"run", "check", "demo", "gen", "state", "cat"} - {cmd}
        assert not any(f"  dmpflow {o} " in r.stdout for o in other), (cmd, r.stdout)
        assert r.stdout[len("usage:\n"):] in full.stdout  # the same text as in the full usage
    # an unknown option still fails as usage
    bad = subprocess.run([str(dmpflow_path()), "run", "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2
