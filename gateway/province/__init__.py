"""Reporting every case to the provincial platform (办件汇聚): the national case-record shape built from the case
history, a per-row delivery state so each step is reported at least once and in order, retried with back-off, and
a daily reconciliation of counts (docs/province.md)."""
