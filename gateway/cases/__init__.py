"""The case (办件): everything about one application that more than one domain needs.

- `gateway.cases.tables` — ``applications``, ``application_materials``, ``application_history``,
  ``tracking_sequences``.
- `gateway.cases.access` — who sees a case (`visible`, `scope_filter`), loading it in scope (404 otherwise), the
  ETag and ``If-Match``, the audit record of a change.
- `gateway.cases.machine` — the statuses and every allowed move, as data.
- `gateway.cases.clock` — the promised-time clock in working days, and how it is stored on the row.
- `gateway.cases.history` — the status history, written in the transaction that changes the status.
- `gateway.cases.numbers` — tracking numbers (with their daily counter) and query codes.
- `gateway.cases.views` — how a case is shown: item, masked applicant, materials.

`gateway.intake`, `gateway.lifecycle` and `gateway.tracking` sit above this package as siblings: they meet here and
never import each other.
"""
