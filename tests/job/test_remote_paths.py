"""A ``gs://`` input or output that cannot be reached is refused in seconds, before anything is listed.

Beam's GCS filesystem retries for about 120 s offline, then raises a ``BeamIOError``; the command
checks the endpoint first (:mod:`beam_cross.job.remote`). The endpoint a test points the check at
is closed by construction (a port this test bound and closed), so what is tested does not hang on
whether this machine happens to reach Cloud Storage; one test runs the command as it is, with the
real endpoint, and is skipped where Cloud Storage answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from apache_beam.io.filesystems import FileSystems

from beam_cross.job import remote
from beam_cross.job.cli import main
from beam_cross.job.errors import PlanError


@pytest.fixture
def closed_port():
    """A local TCP port nothing listens on: a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def nothing_listed(monkeypatch):
    """Fails a test in which Beam's filesystems are asked to list, look at or write anything on gs://."""
    calls = []

    def refuse(name, original):
        def call(*args, **kwargs):
            if "gs://" in repr(args):
                calls.append((name, args))
                raise AssertionError(f"FileSystems.{name} was called: {args}")
            return original(*args, **kwargs)
        return call

    for name in ("match", "exists", "create", "open", "delete", "rename"):
        monkeypatch.setattr(FileSystems, name, staticmethod(refuse(name, getattr(FileSystems, name))))
    yield calls
    assert calls == []


def test_an_endpoint_that_does_not_answer_is_refused_with_what_to_do(closed_port):
    with pytest.raises(PlanError) as error:
        remote.check_remote("gs://bucket/logs/*.parquet", "--input", endpoint=("127.0.0.1", closed_port))
    message = str(error.value)
    assert message.startswith("`--input` gs://bucket/logs/*.parquet cannot be reached: Cloud Storage ")
    assert f"127.0.0.1:{closed_port}" in message and "ConnectionRefusedError" in message
    assert "check the network, the firewall or HTTPS_PROXY" in message
    assert "\n" not in message


def test_local_paths_and_a_reachable_endpoint_pass(closed_port):
    remote.check_remote("/data/logs/*.csv", "--input", endpoint=("127.0.0.1", closed_port))  # not remote: no check
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        remote.check_remote("gs://bucket/x.csv", "--input", endpoint=server.getsockname())


@pytest.mark.parametrize("flag", ["--input", "--output"])
def test_the_command_refuses_an_unreachable_gs_path_without_listing(flag, tmp_path, closed_port, no_proxy_env,
                                                                    nothing_listed, monkeypatch, capsys):
    # The command's own check is pointed at the closed port; Beam's filesystems are not touched at all.
    monkeypatch.setattr(remote, "GCS_ENDPOINT", ("127.0.0.1", closed_port))
    path = "gs://bucket/logs/*.parquet" if flag == "--input" else "gs://bucket/crossed"
    args = ["--cross", "country,hour:10", flag, path]
    if flag == "--input":
        args += ["--output", str(tmp_path / "out")]
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"beam-cross: error: `{flag}` {path} cannot be reached: Cloud Storage (127.0.0.1:{closed_port})")
    assert err.count("\n") == 1 and "Traceback" not in err and "BeamIOError" not in err


def test_gs_without_the_gcp_extra_says_what_to_install(nothing_listed, monkeypatch):
    from apache_beam.io.gcp import gcsio

    monkeypatch.setattr(gcsio, "GCS_INSTALLED", False)  # as in an install of apache-beam without [gcp]
    with pytest.raises(PlanError, match=r"^`--output` gs://bucket/out cannot be read or written here: .*"
                                        r"pip install 'apache-beam\[gcp\]'\.$"):
        remote.check_remote("gs://bucket/out", "--output")


def test_an_unknown_scheme_is_refused():
    with pytest.raises(PlanError, match=r"Beam has no filesystem for nosuchfs:// installed"):
        remote.check_remote("nosuchfs://bucket/x.csv", "--input")


def test_the_endpoint_is_the_emulator_or_the_proxy_the_client_would_use(no_proxy_env, monkeypatch):
    assert remote.gcs_endpoint() == ("storage.googleapis.com", 443, "Cloud Storage")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert remote.gcs_endpoint() == ("proxy.example", 3128, "the HTTPS proxy")
    monkeypatch.setenv("NO_PROXY", "storage.googleapis.com")
    assert remote.gcs_endpoint()[:2] == ("storage.googleapis.com", 443)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://localhost:9023")
    assert remote.gcs_endpoint()[:2] == ("localhost", 9023)


def test_offline_the_command_fails_in_seconds_not_after_the_retries(tmp_path):
    # As a user runs it, with the real endpoint: meaningful only where Cloud Storage does not answer.
    host, port, _ = remote.gcs_endpoint()
    if remote.reachable((host, port)) is None:
        pytest.skip(f"{host}:{port} answers from this machine: the offline refusal cannot be shown here")
    env = {k: v for k, v in os.environ.items() if k != "BEAM_CROSS_KERNEL"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "beam_cross", "--input", "gs://bucket/x/*.parquet", "--cross",
                           "country,hour:10", "--output", "gs://bucket/out"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90)  # Beam's retries alone take 120 s
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("beam-cross: error: `--input` gs://bucket/x/*.parquet cannot be reached: "), done.stderr
    assert f"({host}:{port})" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 90
