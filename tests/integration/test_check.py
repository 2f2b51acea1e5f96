"""`dmpflow check` and `dmpflow run` agree (issue 22): every configuration
that run rejects, check rejects, with the same exit code (2) and the same
messages; run never gets further (nothing is connected, no state directory
made). Before the fix an invalid [kafka] property made run segfault (exit
139, nothing printed) while check said "ok", and check knew nothing of
[state] dir.

A state directory held by a running instance is not a configuration error:
check says so in a note and exits 0; run exits 1 naming the process."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from reference import Window
from support import free_port, http_get, make_config

MEASURES = {"score": "0.7*price + 0.3*quantity"}
WINDOWS = [Window("w", "tumbling", size_ms=10_000, grace_ms=0, measures=("score",))]


def base(bootstrap: str, state_dir: Path, **kw) -> str:
    return make_config(bootstrap=bootstrap, input_topic="check-in", output_topic="check-out",
                       state_dir=state_dir, group_id="check-g", measures=MEASURES,
                       windows=WINDOWS, **kw)


def errors(stderr: str) -> list[str]:
    """The configuration error lines ("file:line: ...", "file: ...", "-o: ...")."""
    return [l for l in stderr.splitlines() if re.match(r"^(\S+\.conf(:\d+)?|-o): ", l)]


# name -> (edit of the base text, overrides, a fragment of the expected error)
CASES = {
    "kafka_invalid_value_override": (None, ["kafka.acks=banana"],
                                     '-o: [kafka] acks: Invalid value for configuration property'),
    "kafka_unknown_property": (lambda t: t.replace("[input]", "no.such.prop = 1\n\n[input]", 1),
                               [], '[kafka] no.such.prop: No such configuration property'),
    "kafka_refused_at_creation": (lambda t: t.replace("[input]", "acks = 1\n\n[input]", 1), [],
                                  "`acks` must be set to `all` when `enable.idempotence` is true"),
    "kafka_ssl_ca_unreadable": (lambda t: t.replace(
        "[input]", "security.protocol = ssl\nssl.ca.location = /nonexistent/ca.pem\n\n[input]", 1),
        [], "[kafka] ssl.ca.location: the producer cannot be created"),
    "kafka_bootstrap_missing": (lambda t: re.sub(r"bootstrap.servers = .*\n", "", t), [],
                                "[kafka] bootstrap.servers is required"),
    "state_dir_under_a_file": (None, ["state.dir=/etc/hostname/state"],
                               "-o: [state] dir: cannot create /etc/hostname/state: "
                               "/etc/hostname is not a directory"),
    "state_dir_is_a_file": (None, ["state.dir=/etc/hostname"],
                            "[state] dir: /etc/hostname is not a directory"),
    "unknown_property_named_section": (lambda t: t.replace("[window w]\n", "[window w]\nsise.ms = 1\n"),
                                       [], '[window w] unknown property "sise.ms"'),
    "bad_override_dotted": (None, ["window.w.grace.ms=soon"],
                            '-o: [window w] grace.ms: "soon" is not an integer'),
    "header_without_bracket": (lambda t: t.replace("[window w]", "[window w"), [],
                               "a section header without its closing ]"),
    "nul_byte": (lambda t: t.replace("[output]", "\0[output]"), [], "NUL byte"),
    "measure_unknown_field": (None, ["measure.score.expr=2*nosuchfield"], "nosuchfield"),
    "registry_url_scheme": (None, ["input.format=confluent", "input.registry.url=ftp://x"],
                            "[input] registry.url must be http://HOST:PORT"),
    "log_file_unwritable": (None, ["log.file=/nonexistent/dir/x.log"], "/nonexistent/dir/x.log"),
    "http_auth_without_colon": (None, ["http.auth.user.info=nocolon"],
                                "[http] auth.user.info must be user:password"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_rejects_what_run_rejects(case, dmpflow, tmp_path):
    edit, overrides, fragment = CASES[case]
    state = tmp_path / "state"
    # a port nothing listens on: neither may get as far as connecting
    text = base(f"127.0.0.1:{free_port()}", state)
    if edit:
        text = edit(text)
    conf = dmpflow.write_config(text)
    args = [a for o in overrides for a in ("-o", o)]
    check = dmpflow.run("check", "-c", conf, *args, timeout=30)
    run = dmpflow.run("run", "-c", conf, *args, timeout=30)
    assert check.popen.returncode == 2, check.stderr
    assert run.popen.returncode == 2, run.stderr
    assert "ok" not in check.stdout
    assert errors(check.stderr) == errors(run.stderr) != [], (check.stderr, run.stderr)
    assert any(fragment in l for l in errors(check.stderr)), (fragment, check.stderr)
    assert not state.exists(), "run made the state directory before rejecting the configuration"


def test_state_of_another_pipeline(kafka, dmpflow, tmp_path):
    """State written by one pipeline definition: check and run refuse
    another (here: a window's size changed) with the same message."""
    state = tmp_path / "state"
    port = free_port()
    src = kafka.topic(1, "in")  # (run needs it: the changelog takes its partition count)
    text = base(kafka.bootstrap, state).replace("topic = check-in", f"topic = {src}", 1) \
        .replace("group.id = check-g", f"group.id = {src}-g", 1)
    conf = dmpflow.write_config(text + f"\n[http]\nport = {port}\n")
    assert dmpflow.run("check", "-c", conf).popen.returncode == 0
    proc = dmpflow.start("run", "-c", conf)
    deadline = time.monotonic() + 30
    while http_get(port, "/healthz")[0] != 200:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr[-2000:]
        time.sleep(0.1)
    # held by the running instance: a note, not an error; run cannot start
    check = dmpflow.run("check", "-c", conf)
    assert check.popen.returncode == 0, check.stderr
    assert f"note: the state directory {state} is in use by process {proc.pid}" in check.stderr
    assert f"note: [http] port {port} on 127.0.0.1 is in use now" in check.stderr
    second = dmpflow.run("run", "-c", conf, "-o", f"http.port={free_port()}")
    assert second.popen.returncode == 1, second.stderr
    assert f"the state directory {state} is in use by process {proc.pid}" in second.stderr
    assert dmpflow.stop(proc) == 0

    args = ("-o", "window.w.size.ms=20000")
    check = dmpflow.run("check", "-c", conf, *args)
    run = dmpflow.run("run", "-c", conf, *args)
    assert check.popen.returncode == run.popen.returncode == 2, (check.stderr, run.stderr)
    assert errors(check.stderr) == errors(run.stderr)
    assert any("[state] dir: the state in" in l and "was written by a different pipeline" in l
               for l in errors(check.stderr)), check.stderr
    check = dmpflow.run("check", "-c", conf)
    assert check.popen.returncode == 0 and "note" not in check.stderr, check.stderr
