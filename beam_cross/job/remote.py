"""A remote path's filesystem, checked in seconds before ``beam-cross`` lists or writes anything there.

Beam's filesystems retry: offline, listing ``gs://bucket/x/*.parquet`` takes about 120 s and ends in a
``BeamIOError``. :func:`check_remote` refuses such a path at once, with what to do:

- a scheme whose Beam filesystem is not installed, or (``gs://``) whose client library is not
  (``apache-beam`` without its ``[gcp]`` extra);
- for ``gs://``, an endpoint that does not answer a TCP connection within a few seconds: Cloud
  Storage (``storage.googleapis.com:443``), the emulator that ``STORAGE_EMULATOR_HOST`` names, or the
  HTTPS proxy that the environment sets for it.

It proves nothing about the bucket: permissions and credentials are the filesystem's to report
(Beam falls back to anonymous access when no credentials are found, which works on public buckets).

>>> check_remote("gs://bucket/logs/*.csv", "--input", endpoint=("127.0.0.1", 9), timeout=2.0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
beam_cross.job.errors.PlanError: `--input` gs://bucket/logs/*.csv cannot be reached: Cloud Storage (127.0.0.1:9) does not answer from this machine (ConnectionRefusedError: ...); check the network, the firewall or HTTPS_PROXY, or run where Cloud Storage is reachable.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request

from apache_beam.io.filesystems import FileSystems

from beam_cross.job.errors import PlanError

GCS_ENDPOINT = ("storage.googleapis.com", 443)
TIMEOUT_SECONDS = 5.0
_EXTRAS = {"gs": "apache-beam[gcp]", "s3": "apache-beam[aws]", "azfs": "apache-beam[azure]", "hdfs": "apache-beam[hadoop]"}


def gcs_endpoint() -> tuple[str, int, str]:
    """(host, port, what) that this process's GCS client connects to first: the emulator, a proxy, or Cloud Storage."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        url = urllib.parse.urlsplit(emulator if "://" in emulator else f"http://{emulator}")
        return url.hostname or "localhost", url.port or (443 if url.scheme == "https" else 80), \
            "the Cloud Storage emulator of STORAGE_EMULATOR_HOST"
    host, port = GCS_ENDPOINT
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return url.hostname or host, url.port or (443 if url.scheme == "https" else 80), "the HTTPS proxy"
    return host, port, "Cloud Storage"


def reachable(endpoint: tuple[str, int], timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None if ``endpoint`` (host, port) takes a TCP connection within ``timeout`` s, else why not."""
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as error:  # a name that does not resolve, a refused or unreachable address
        return f"{type(error).__name__}: {error}"


def check_remote(path: str, flag: str, *, endpoint: tuple[str, int] | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
    """Raises PlanError if ``path`` (of ``flag``) is remote and its filesystem is missing or out of reach."""
    scheme, sep, _ = path.partition("://")
    if not sep:
        return
    extra = _EXTRAS.get(scheme.lower())
    install = f"pip install '{extra}'" if extra else f"install the Beam filesystem of {scheme}://"
    try:
        FileSystems.get_filesystem(path)
    except ValueError:  # Beam: "Unable to get filesystem from specified path..."
        raise PlanError(f"`{flag}` {path} cannot be read or written here: Beam has no filesystem for {scheme}:// "
                        f"installed; {install}.") from None
    if scheme.lower() != "gs":
        return
    from apache_beam.io.gcp import gcsio

    if not gcsio.GCS_INSTALLED:  # Beam's GCS filesystem is there, its client library is not
        raise PlanError(f"`{flag}` {path} cannot be read or written here: Beam's GCS filesystem needs the Google "
                        f"Cloud Storage client, which is not installed; {install}.")
    host, port, what = gcs_endpoint() if endpoint is None else (*endpoint, "Cloud Storage")
    why = reachable((host, port), timeout)
    if why is not None:
        raise PlanError(f"`{flag}` {path} cannot be reached: {what} ({host}:{port}) does not answer from this machine "
                        f"({why}); check the network, the firewall or HTTPS_PROXY, or run where Cloud Storage is "
                        "reachable.")
