"""State integrity: gist files checked against their registers, and registers against their own digests.

The register is the source of truth. One check reads a page of the state table (a scan from a
cursor the caller keeps, so successive healer passes cover every key in turn) and, for each
register on it:

- a value that fails the register's own digest is restored from the newest gist revision (of the
  newest `revisions`) whose file for the key opens and matches the digest the version log holds for
  that version: written as a new version through the ordinary conditional commit (the log keeps
  the corrupt version's place), then alerted;
- a synced key's file in its gist must be JSON, open (decrypt, bound to the key) and hold the synced
  version with the digest the register or the version log gives it; a file that fails is rewritten
  from the register: the key is marked unsynced and its sync scheduled (the state_sync function
  writes it, under the gist's lease and write budget), then alerted.

Bounded: at most `items` table items read and at most `gists` gists fetched per check (each once);
the page stops at the first register whose gist would exceed that, and the cursor resumes there.
A gist that cannot be read (the Gist API is down) stops the check the same way: an outage delays
the check, it does not fail the healer's pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cmdgate.crypto import Codec
from cmdgate.errors import InvalidJson
from cmdgate.gist import Gist, GistClient
from cmdgate.state import layout
from cmdgate.state.model import Register, digest_of
from cmdgate.state.store import KeyLeased, StateStore, WriteConflict


class RepairScheduler(Protocol):
    """Re-sends a key's sync under a fresh deduplication id (cmdgate.state.service.FifoSyncQueue)."""

    def schedule(self, key: str, version: int, *, repair: str | None = None) -> None: ...


@dataclass(frozen=True)
class IntegrityLimits:
    """Bounds of one check."""

    items: int = 200  # state-table items read (registers, version log entries, shard entries)
    gists: int = 4  # gists fetched (a gist is read once however many of its keys the page holds)
    revisions: int = 10  # gist revisions tried, newest first, to restore a register


@dataclass
class IntegrityReport:
    """What one check found and did."""

    registers: int = 0
    files: int = 0
    gists: int = 0
    # (action, fields) in the order they happened
    actions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    next_start: dict[str, Any] | None = None


Act = Callable[[str, dict[str, Any]], None]
Alert = Callable[[str, str], None]  # (subject_id, cause)


class StateIntegrity:
    """One bounded check of registers and gist files; every collaborator is passed in."""

    def __init__(
        self,
        store: StateStore,
        gist: GistClient,
        codec: Codec,
        sync: RepairScheduler,
        *,
        limits: IntegrityLimits | None = None,
    ) -> None:
        self._store = store
        self._gist = gist
        self._codec = codec
        self._sync = sync
        self._limits = limits or IntegrityLimits()

    def check(
        self, start: dict[str, Any] | None, repair_id: str, alert: Alert, out_of_time: Callable[[], bool]
    ) -> IntegrityReport:
        """Check one page from `start`; `report.next_start` is where the next check begins (None: the end)."""
        report = IntegrityReport()
        registers, after = self._store.scan_registers(start, self._limits.items)
        fetched: dict[str, Gist] = {}
        for index, register in enumerate(registers):
            needs = register.gist_id if register.gist_id and register.gist_id not in fetched else None
            if out_of_time() or (needs is not None and len(fetched) >= self._limits.gists):
                # Resume at this register next time (the scan starts after the key it is given).
                report.next_start = _key_of(registers[index - 1]) if index else start
                return report
            report.registers += 1
            if not _value_intact(register):
                self._restore(register, repair_id, alert, report, fetched)
                continue
            if register.gist_id is None or register.synced_version <= 0:
                continue
            if needs is not None:
                try:
                    fetched[needs] = self._gist.get_gist(needs)
                except Exception:  # noqa: BLE001 - the Gist API is down (health says so): check it next pass
                    report.actions.append(("integrity_gist_unavailable", {"key": register.key}))
                    report.next_start = _key_of(registers[index - 1]) if index else start
                    return report
                report.gists += 1
            report.files += 1
            fault = self._file_fault(register, fetched[register.gist_id])
            if fault is not None:
                self._rewrite(register, fault, repair_id, alert, report)
        report.next_start = after
        return report

    # -- gist files ---------------------------------------------------------------

    def _file_fault(self, register: Register, gist: Gist) -> str | None:
        """Why the key's file fails its check (None: it holds what the register says was synced)."""
        name = register.gist_file or layout.LEGACY_FILE
        if name not in gist.files:
            return "missing from its gist"
        content = self._gist.read_file(gist, name)
        try:
            found = layout.version_in(content)
        except layout.InvalidStateFile:
            return "not a valid JSON state document"
        if found > register.synced_version:
            fresh = self._store.register(register.key)  # a sync may have landed since the page was read
            if fresh is None or fresh.synced_version < found:
                return "ahead of its register"
            return None
        try:
            opened = layout.decode(self._codec, register.key, content)
        except layout.InvalidStateFile:
            return "does not open (decrypt) as this key's document"
        if opened.version < register.synced_version:
            return "behind its register"
        expected = register.digest if opened.version == register.version else self._logged_digest(register)
        if expected is not None and digest_of(opened.value) != expected:
            return "fails its digest"
        return None

    def _logged_digest(self, register: Register) -> str | None:
        entry = self._store.version(register.key, register.synced_version)
        return entry.digest if entry is not None else None

    def _rewrite(self, register: Register, fault: str, repair_id: str, alert: Alert, report: IntegrityReport) -> None:
        if not self._store.mark_unsynced(register.key, register.version, register.synced_version):
            report.actions.append(("gist_file_moved_on", {"key": register.key}))  # written since: nothing to do
            return
        self._sync.schedule(register.key, register.version, repair=repair_id)
        alert(register.key, f"a state gist file {fault}: rewritten from its register")
        report.actions.append(("gist_file_rewritten", {"key": register.key, "fault": fault}))

    # -- registers -------------------------------------------------------------------

    def _restore(
        self, register: Register, repair_id: str, alert: Alert, report: IntegrityReport, fetched: dict[str, Gist]
    ) -> None:
        try:
            found = self._from_gist(register) if register.gist_id is not None else None
        except Exception:  # noqa: BLE001 - the Gist API is down: the register is checked again next time
            report.actions.append(("integrity_gist_unavailable", {"key": register.key}))
            return
        if found is None:
            alert(register.key, "a state register fails its digest and no gist revision matches its version log")
            report.actions.append(("register_unrestorable", {"key": register.key}))
            return
        version, value, deleted = found
        try:
            restored = self._store.commit(
                register.key,
                register,
                json.dumps(value, separators=(",", ":"), ensure_ascii=False),
                digest_of(value),
                deleted=deleted,
                effect=f"restore-{repair_id}",
            )
        except (WriteConflict, KeyLeased):
            report.actions.append(("register_moved_on", {"key": register.key}))  # written since the page was read
            return
        self._sync.schedule(register.key, restored.version, repair=repair_id)
        if register.gist_id is not None:
            fetched.pop(register.gist_id, None)
        alert(register.key, "a state register failed its digest: restored from the newest matching gist revision")
        report.actions.append(
            ("register_restored", {"key": register.key, "from_version": version, "version": restored.version})
        )

    def _from_gist(self, register: Register) -> tuple[int, Any, bool] | None:
        """(version, value, deleted) of the newest revision of the key's file that matches its version log."""
        assert register.gist_id is not None
        name = register.gist_file or layout.LEGACY_FILE
        for commit in self._gist.list_commits(register.gist_id, per_page=self._limits.revisions):
            revision = self._gist.get_revision(register.gist_id, commit.version)
            if name not in revision.files:
                continue
            try:
                opened = layout.decode(self._codec, register.key, self._gist.read_file(revision, name))
            except layout.InvalidStateFile:
                continue  # a corrupt revision: an older one may still match
            entry = self._store.version(register.key, opened.version)
            if entry is not None and entry.digest == digest_of(opened.value) and entry.deleted == opened.deleted:
                return opened.version, opened.value, opened.deleted
        return None


def _value_intact(register: Register) -> bool:
    try:
        return digest_of(json.loads(register.value_json)) == register.digest
    except (ValueError, InvalidJson):
        return False


def _key_of(register: Register) -> dict[str, Any]:
    return {"pk": {"S": f"key#{register.key}"}, "sk": {"S": "register"}}
