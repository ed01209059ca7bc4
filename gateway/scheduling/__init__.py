"""Periodic jobs that run once per deployment, however many gateway processes and hosts run them.

Time is cut into slots of the job's interval, aligned to the wall clock every process shares; at the start of each
slot every process tries to claim ``(job, slot)`` by inserting that row into ``scheduled_runs``; the primary key
lets exactly one insert in, and only that process runs the job for the slot (`periodic`, `claims`).
"""
