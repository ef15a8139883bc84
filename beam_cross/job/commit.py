"""Committing a ``beam-cross`` run: temporary files renamed into place, a manifest written last.

While a run is going, its files live in ``<output>/.beam-cross-tmp-<run id>/`` and the previous
output stays as it was. After the run (and its row accounting) the launcher commits:

1. a journal (``.beam-cross-commit.json``) names the previous run's files and the new ones;
2. the previous manifest goes, then the files it lists (and only those);
3. the new files are renamed into ``crossed/``, ``rejected/``, ``report/`` (and ``learned/``, the
   spec a learning stage learned);
4. the new manifest ``_MANIFEST.json`` is written (the output is complete once it exists), the
   journal and the temporary directory are removed.

A run that dies before step 1 leaves the previous output whole; one that dies during the commit
leaves no manifest (nothing that looks complete) and a journal, from which the next run knows
which files are its own. Files that no manifest or journal lists are never deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

from apache_beam.io.filesystems import FileSystems

TEMP_PREFIX = ".beam-cross-tmp-"
MANIFEST = "_MANIFEST.json"
JOURNAL = ".beam-cross-commit.json"
OWN_DIRS = ("crossed", "rejected", "report", "learned")


def _read_json(path: str):
    try:
        with FileSystems.open(path) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: str, document) -> None:
    temporary = path + ".writing"
    with FileSystems.create(temporary) as handle:
        handle.write(json.dumps(document, indent=2).encode("utf-8"))
    FileSystems.rename([temporary], [path])


def owned_files(output: str) -> set[str]:
    """Paths (relative to ``output``) that an earlier run's manifest or unfinished commit lists."""
    owned = set()
    manifest = _read_json(FileSystems.join(output, MANIFEST))
    if isinstance(manifest, dict):
        owned.update(entry["path"] for key in OWN_DIRS for entry in manifest.get("files", {}).get(key, []))
    journal = _read_json(FileSystems.join(output, JOURNAL))
    if isinstance(journal, dict):
        owned.update(journal.get("previous", []) + journal.get("new", []))
    return owned


def _listing(output: str) -> list[str]:
    """Files under the command's own folders of ``output``, relative to it."""
    found = []
    if "://" not in output:
        for folder in OWN_DIRS:
            for root, _, names in os.walk(os.path.join(output, folder)):
                found += [os.path.relpath(os.path.join(root, n), output) for n in names]
        return sorted(found)
    for folder in OWN_DIRS:
        for result in FileSystems.match([FileSystems.join(output, folder, "*")]):
            found += [m.path[len(output.rstrip("/")) + 1:] for m in result.metadata_list]
    return sorted(found)


def foreign_files(output: str) -> list[str]:
    """Files in the command's folders of ``output`` that no earlier run of the command wrote."""
    owned = owned_files(output)
    return [path for path in _listing(output) if path not in owned]


def _ensure_parent(path: str) -> None:
    if "://" not in path:
        os.makedirs(os.path.dirname(path), exist_ok=True)


def commit(output: str, temp_dir: str, moves: list[tuple[str, str]], manifest: dict) -> None:
    """Replaces the previous output by ``moves`` (temporary path -> path relative to ``output``)."""
    previous = sorted(owned_files(output))
    new = [relative for _, relative in moves]
    _write_json(FileSystems.join(output, JOURNAL), {"previous": previous, "new": new, "started": time.time()})
    manifest_path = FileSystems.join(output, MANIFEST)
    if FileSystems.exists(manifest_path):
        FileSystems.delete([manifest_path])
    stale = [FileSystems.join(output, p) for p in previous if p not in new]
    stale = [p for p in stale if FileSystems.exists(p)]
    if stale:
        FileSystems.delete(stale)
    for source, relative in moves:
        target = FileSystems.join(output, relative)
        _ensure_parent(target)
        if FileSystems.exists(target):  # a previous run's file of the same name (listed, so ours)
            FileSystems.delete([target])
        FileSystems.rename([source], [target])
    _write_json(manifest_path, manifest)
    FileSystems.delete([FileSystems.join(output, JOURNAL)])
    remove_temp(temp_dir)


def remove_temp(temp_dir: str) -> None:
    path = temp_dir if "://" not in temp_dir else temp_dir.rstrip("/") + "/"
    if FileSystems.exists(temp_dir) or "://" in temp_dir:
        with contextlib.suppress(Exception):  # nothing left to delete on an object store
            FileSystems.delete([path])


# -- one writer per output ------------------------------------------------------------------------------
LOCK = ".beam-cross-lock"
HEARTBEAT_SECONDS = 30
STALE_SECONDS = 600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class OutputLock:
    """``<output>/.beam-cross-lock``: one run writes an output at a time.

    The lock names its run (pid, host, start time) and is refreshed every ``HEARTBEAT_SECONDS`` while
    the run lives. A second run finding a live lock is refused (:class:`~beam_cross.job.errors.OutputBusy`,
    exit status 2). A lock is stale, and taken over, when its process is gone (same host) or its
    heartbeat is older than ``STALE_SECONDS`` (any host: a killed launcher elsewhere). Locally the
    lock file is created exclusively (``O_EXCL``) and a stale one renamed away first, so two runs
    never both hold it. On an object store (``gs://``) Beam's filesystem API has no create-if-absent
    precondition: the lock is checked, then written, and a run starting within that window of
    another is not refused.
    """

    def __init__(self, output: str, run_id: str):
        self.path = FileSystems.join(output, LOCK)
        self.run_id = run_id
        self.info = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "heartbeat": time.time()}
        self._stop = threading.Event()
        self._thread = None

    def _stale(self, held: dict) -> bool:
        if held.get("host") == socket.gethostname() and isinstance(held.get("pid"), int):
            return not _alive(held["pid"])
        return time.time() - float(held.get("heartbeat", 0)) > STALE_SECONDS

    def _refuse(self, held: dict):
        from beam_cross.job.errors import OutputBusy

        raise OutputBusy(f"`--output` {os.path.dirname(self.path) if '://' not in self.path else self.path.rsplit('/', 1)[0]} "
                         f"is being written by another beam-cross run (pid {held.get('pid')} on {held.get('host')}, "
                         f"started {held.get('started')}); wait for it, or choose another --output. A lock left by a "
                         f"killed run is taken over once its process is gone or after {STALE_SECONDS} s without a "
                         f"heartbeat ({self.path}).")

    def _create_local(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.info, handle)
        return True

    def acquire(self) -> None:
        for _ in range(3):
            if "://" not in self.path:
                if self._create_local():
                    break
            elif not FileSystems.exists(self.path):
                _write_json(self.path, self.info)
                break
            held = _read_json(self.path)
            if held is None:  # being written right now, or removed: look again
                time.sleep(0.05)
                continue
            if not self._stale(held):
                self._refuse(held)
            stale = f"{self.path}.stale-{self.run_id}"
            try:
                FileSystems.rename([self.path], [stale])
            except Exception:
                continue  # another run took it over first: look again
            with contextlib.suppress(Exception):
                FileSystems.delete([stale])
        else:
            held = _read_json(self.path) or {}
            self._refuse(held)
        self._thread = threading.Thread(target=self._beat, name="beam-cross-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            held = _read_json(self.path)
            if not held or held.get("run_id") != self.run_id:
                return
            self.info["heartbeat"] = time.time()
            with contextlib.suppress(Exception):
                _write_json(self.path, self.info)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        held = _read_json(self.path)
        if held and held.get("run_id") == self.run_id:
            with contextlib.suppress(Exception):
                FileSystems.delete([self.path])

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
