"""Batch verification of certificates, inline or in worker processes.

Signature verification is the most expensive step of a bulk sync (Ed25519 ~150 µs per certificate on the 2-core
reference machine, and `cryptography` holds the GIL while verifying, so threads do not help). `ProcessVerifier`
moves pages to worker processes — certificates go over as one msgpack blob and verdicts come back the same way —
so fetching, decoding and storing in the main process overlap with verifying other pages. A page is split into one
chunk per worker, so a department's page is verified on every core that is free; the workers are started (and
their trust stores loaded) when the verifier opens, not by the first page, and run at a lower priority (``nice``)
than the process that writes the database.
`InlineVerifier` does the same work in the calling thread; it is the default and is what lookups use.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from connectors.model import Certificate, SignatureAlgorithm, Verification
from connectors.trust import TrustedKey, TrustStore


class Verifier(Protocol):
    async def start(self) -> None: ...

    async def verify_batch(
        self, certificates: Sequence[Certificate], *, department: str, today: dt.date
    ) -> list[Verification]: ...

    async def aclose(self) -> None: ...


class InlineVerifier:
    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust

    async def start(self) -> None:
        return None

    async def verify_batch(
        self, certificates: Sequence[Certificate], *, department: str, today: dt.date
    ) -> list[Verification]:
        verify = self.trust.verify
        return [verify(c, today=today, department=department) for c in certificates]

    async def aclose(self) -> None:
        return None


class _KeyEntry(msgspec.Struct, array_like=True, frozen=True):
    key_id: str
    department: str
    issuer_code: str
    alg: SignatureAlgorithm
    pem: bytes


_CERTS_ENCODER = msgspec.msgpack.Encoder()
_CERTS_DECODER = msgspec.msgpack.Decoder(list[Certificate])
_VERDICTS_DECODER = msgspec.msgpack.Decoder(list[Verification])
_worker_store: TrustStore | None = None


def _export(trust: TrustStore) -> list[_KeyEntry]:
    return [
        _KeyEntry(
            key.key_id,
            key.department,
            key.issuer_code,
            key.alg,
            key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
        for key in trust.keys.values()
    ]


def _init_worker(entries: list[_KeyEntry], nice: int = 0) -> None:
    global _worker_store
    if nice:
        with contextlib.suppress(OSError):  # a platform without priorities verifies all the same
            os.nice(nice)
    keys = []
    for entry in entries:
        public_key = serialization.load_pem_public_key(entry.pem)
        assert isinstance(public_key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
        keys.append(
            TrustedKey(
                key_id=entry.key_id,
                department=entry.department,
                issuer_code=entry.issuer_code,
                alg=entry.alg,
                public_key=public_key,
            )
        )
    _worker_store = TrustStore(keys)


def _ready() -> bool:
    return _worker_store is not None


def _verify_in_worker(payload: bytes, department: str, today: str) -> bytes:
    store = _worker_store
    assert store is not None, "worker not initialised"
    day = dt.date.fromisoformat(today)
    verdicts = [store.verify(c, today=day, department=department) for c in _CERTS_DECODER.decode(payload)]
    return _CERTS_ENCODER.encode(verdicts)


class ProcessVerifier:
    """Verification in ``processes`` worker processes (spawned, so safe beside a running event loop)."""

    #: Smallest chunk worth its own round trip to a worker (pickling, the pipe and a wake-up per chunk).
    MIN_CHUNK = 32
    #: Workers run this much nicer than the caller: in a bulk sync the caller's process holds the database's single
    #: writer and the event loop, the serial part; verification, the parallel part, takes the CPU they leave.
    NICE = 5

    def __init__(self, trust: TrustStore, processes: int = 1, *, nice: int = NICE) -> None:
        self.trust = trust
        self.processes = processes
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(_export(trust), nice),
        )

    async def start(self) -> None:
        """Spawn every worker now (each loads the trust store), so the first page does not wait for it."""
        loop = asyncio.get_running_loop()
        # One submission per worker makes the executor spawn them all; they start in parallel.
        ready = [loop.run_in_executor(self._executor, _ready) for _ in range(self.processes)]
        await asyncio.gather(*ready)

    async def verify_batch(
        self, certificates: Sequence[Certificate], *, department: str, today: dt.date
    ) -> list[Verification]:
        if not certificates:
            return []
        loop = asyncio.get_running_loop()
        day = today.isoformat()
        items = list(certificates)
        chunks = min(self.processes, max(1, len(items) // self.MIN_CHUNK))
        size = -(-len(items) // chunks)
        calls = [
            loop.run_in_executor(
                self._executor, _verify_in_worker, _CERTS_ENCODER.encode(items[i : i + size]), department, day
            )
            for i in range(0, len(items), size)
        ]
        try:
            results = await asyncio.gather(*calls)
        except BaseException:
            for call in calls:
                call.cancel()
            raise
        verdicts: list[Verification] = []
        for result in results:
            verdicts.extend(_VERDICTS_DECODER.decode(result))
        return verdicts

    async def aclose(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
