"""One department system's certificate table: ordered by (updated_at, identifier), indexed by holder.

Change times are whole seconds (the legacy XML system cannot say more) and a change made by the simulator is always
stamped strictly later than every earlier change, so "updated since the last record I saw" never misses one.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from catalog.calendar import DISTRICT_TZ
from connectors.model import Certificate, CertificateStatus, Signature, canonical_bytes
from connectors.trust import IssuerPrivateKey, issuer_algorithm, issuer_key_id, issuer_private_key, sign_bytes
from demokit.simulators.seed import SeededCertificate

#: Above every identifier: ``(t, _AFTER_ALL)`` sorts after every key with the same time.
_AFTER_ALL = "\U0010ffff"


class StoredCertificate(msgspec.Struct, frozen=True, kw_only=True):
    certificate: Certificate
    updated_at: dt.datetime

    @property
    def key(self) -> tuple[dt.datetime, str]:
        return (self.updated_at, self.certificate.identifier)


def now_in_shanghai() -> dt.datetime:
    return dt.datetime.now(DISTRICT_TZ).replace(microsecond=0)


class CertificateStore:
    """The certificates one department holds; the simulator's handlers page through it."""

    def __init__(self, department: str, seeded: Iterable[SeededCertificate]) -> None:
        self.department = department
        self._key: IssuerPrivateKey = issuer_private_key(department)
        self._key_id = issuer_key_id(department)
        self._alg = issuer_algorithm(department)
        entries = sorted(
            (StoredCertificate(certificate=s.certificate, updated_at=s.updated_at) for s in seeded),
            key=lambda e: e.key,
        )
        self._entries: list[StoredCertificate] = entries
        self._keys: list[tuple[dt.datetime, str]] = [e.key for e in entries]
        self._by_identifier: dict[str, StoredCertificate] = {e.certificate.identifier: e for e in entries}
        self._by_holder: dict[str, list[str]] = {}
        for entry in entries:
            self._by_holder.setdefault(entry.certificate.holder_code, []).append(entry.certificate.identifier)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> Sequence[StoredCertificate]:
        return self._entries

    def get(self, identifier: str) -> StoredCertificate | None:
        return self._by_identifier.get(identifier)

    # reading ----------------------------------------------------------------------------------------------------
    def start_after(self, updated_since: dt.datetime | None) -> int:
        """Index of the first record changed strictly after ``updated_since`` (0 when None)."""
        if updated_since is None:
            return 0
        return bisect.bisect_right(self._keys, (updated_since, _AFTER_ALL))

    def start_after_key(self, updated_at: dt.datetime, identifier: str) -> int:
        """Index of the first record after the record ``(updated_at, identifier)`` in list order (keyset cursor)."""
        return bisect.bisect_right(self._keys, (updated_at, identifier))

    def changed_since(self, updated_since: dt.datetime | None) -> Sequence[StoredCertificate]:
        return self._entries[self.start_after(updated_since) :]

    def slice(self, start: int, stop: int) -> list[StoredCertificate]:
        return self._entries[start:stop]

    def of_holder(self, holder_code: str, type_codes: Iterable[str] = ()) -> list[StoredCertificate]:
        """All certificates of one holder, in list order, optionally only of the given type codes."""
        wanted = set(type_codes)
        found = [self._by_identifier[i] for i in self._by_holder.get(holder_code.upper(), ())]
        if wanted:
            found = [e for e in found if e.certificate.type_code in wanted]
        return sorted(found, key=lambda e: e.key)

    # changes ----------------------------------------------------------------------------------------------------
    def _change_time(self) -> dt.datetime:
        now = now_in_shanghai()
        if self._keys and now <= self._keys[-1][0]:
            return self._keys[-1][0] + dt.timedelta(seconds=1)
        return now

    def _replace(self, entry: StoredCertificate, certificate: Certificate, at: dt.datetime) -> StoredCertificate:
        index = bisect.bisect_left(self._keys, entry.key)
        del self._entries[index]
        del self._keys[index]
        updated = StoredCertificate(certificate=certificate, updated_at=at)
        self._entries.append(updated)  # the change time is later than every other, so it goes last
        self._keys.append(updated.key)
        self._by_identifier[certificate.identifier] = updated
        return updated

    def touch(self, count: int = 1, identifiers: Sequence[str] = ()) -> list[StoredCertificate]:
        """Mark certificates as changed now: the named ones, else the ``count`` least recently changed."""
        if identifiers:
            unique = dict.fromkeys(identifiers)
            chosen = [self._by_identifier[i] for i in unique if i in self._by_identifier]
        else:
            chosen = list(self._entries[: max(count, 0)])
        if not chosen:
            return []
        at = self._change_time()
        return [self._replace(entry, entry.certificate, at) for entry in chosen]

    def set_status(self, identifier: str, status: CertificateStatus) -> StoredCertificate | None:
        """Change a certificate's status and re-sign it, as the issuer does when revoking (撤销 = 03)."""
        entry = self._by_identifier.get(identifier)
        if entry is None:
            return None
        changed = self.sign(msgspec.structs.replace(entry.certificate, status=status))
        return self._replace(entry, changed, self._change_time())

    def sign(self, certificate: Certificate) -> Certificate:
        value = base64.b64encode(sign_bytes(self._key, canonical_bytes(certificate))).decode("ascii")
        return msgspec.structs.replace(
            certificate, signature=Signature(alg=self._alg, key_id=self._key_id, value=value)
        )
