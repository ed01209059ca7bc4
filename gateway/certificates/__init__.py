"""The certificate store and the intake's lookup: the gateway side of the department connectors.

- `gateway.certificates.tables` — ``certificates`` (verified, holder data encrypted, blind-indexed by ID number),
  ``certificate_rejections`` (why a certificate was refused; no personal data), ``sync_cursors``.
- `gateway.certificates.store.CertificateStore` — the connectors' sync sink (``accept`` / ``cursor`` /
  ``save_cursor``): one transaction and one audit record per page, upsert by identifier, authentic revocations
  withdraw the stored copy.
- `gateway.certificates.lookup.CertificateService` — ``await lookup(holder_id, types, purpose=..., actor=...)``:
  store first, live pulls in parallel within one time budget, an `Outcome` per type; the application context's
  ``certificates``.
- `gateway.certificates.runtime` — department files (rebased onto the simulators on request), the lifespan that
  builds the pool and the service, the non-critical "departments" readiness check.
- ``onewindow connectors sync|check`` lives in `gateway.commands.connectors`.
"""
