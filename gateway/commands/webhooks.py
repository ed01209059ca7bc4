"""`onewindow webhooks list|deliveries|retry|alerts`: subscriptions, dead letters and failing endpoints.

``list`` shows every subscription with its endpoint's health; ``deliveries SUBSCRIPTION [--state dead]`` its
deliveries; ``retry DELIVERY`` replays one dead or failed delivery, ``retry --all-dead [--subscription ID]`` every
dead letter (audited as ``webhook.delivery_retried`` by ``cli:<user>``); ``alerts`` the endpoints failing longer
than ``webhook_alert_after_seconds`` (exit 1 when there is one, for a monitoring check).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.commands.support import add_settings_options, cli_actor, command_settings, run_on_database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("webhooks", help="webhook subscriptions, dead letters and alerts")
    actions = p.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="subscriptions and their endpoints' health")
    listing.set_defaults(handler=_list)

    deliveries = actions.add_parser("deliveries", help="a subscription's deliveries")
    deliveries.add_argument("subscription")
    deliveries.add_argument("--state", choices=("pending", "failed", "succeeded", "dead"))
    deliveries.add_argument("--limit", type=int, default=100)
    deliveries.set_defaults(handler=_deliveries)

    retry = actions.add_parser("retry", help="replay a dead (or failed) delivery, or every dead letter")
    retry.add_argument("delivery", nargs="?")
    retry.add_argument("--all-dead", action="store_true", help="every dead letter (of --subscription)")
    retry.add_argument("--subscription")
    retry.set_defaults(handler=_retry)

    alerts = actions.add_parser("alerts", help="endpoints failing longer than the configured time (exit 1 if any)")
    alerts.set_defaults(handler=_alerts)

    for parser in (listing, deliveries, retry, alerts):
        add_settings_options(parser)


def _list(args: argparse.Namespace) -> int:
    from gateway.events.subscriptions import subscription_view
    from gateway.events.tables import webhook_subscriptions
    from gateway.storage.database import Database

    settings = command_settings(args, "webhooks list")
    if settings is None:
        return 2

    async def work(db: Database) -> list[Any]:
        from sqlalchemy import select

        async with db.read() as conn:
            rows = await conn.execute(select(webhook_subscriptions).order_by(webhook_subscriptions.c.created_at))
            return [subscription_view(r) for r in rows]

    for view in run_on_database(settings, work):
        health = view.health
        state = view.status if not health.failing_since else f"{view.status}, failing since {health.failing_since}"
        print(f"{view.id}  {view.url}  [{state}]  {', '.join(view.events)}")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    from gateway.events.subscriptions import deliveries_query, delivery_view
    from gateway.events.tables import webhook_deliveries
    from gateway.storage.database import Database

    settings = command_settings(args, "webhooks deliveries")
    if settings is None:
        return 2

    async def work(db: Database) -> list[Any]:
        d = webhook_deliveries.c
        query = deliveries_query().where(d.subscription_id == args.subscription)
        if args.state:
            query = query.where(d.state == args.state)
        async with db.read() as conn:
            return [delivery_view(r) for r in await conn.execute(query.order_by(d.event_seq).limit(args.limit))]

    for v in run_on_database(settings, work):
        print(
            f"{v.id}  {v.event_type}  {v.state}  attempts={v.attempts}  "
            f"last={v.last_status_code or '-'} {v.last_error or ''}".rstrip()
        )
    return 0


def _retry(args: argparse.Namespace) -> int:
    from gateway.events.subscriptions import retry_deliveries
    from gateway.problems import ProblemError

    settings = command_settings(args, "webhooks retry")
    if settings is None:
        return 2
    if bool(args.delivery) == bool(args.all_dead):
        print("onewindow webhooks retry: name one DELIVERY, or give --all-dead", file=sys.stderr)
        return 2
    try:
        replayed = run_on_database(
            settings,
            lambda db: retry_deliveries(
                db, actor=cli_actor(), subscription_id=args.subscription, delivery_id=args.delivery
            ),
        )
    except ProblemError as exc:
        print(f"onewindow webhooks retry: {exc.detail}", file=sys.stderr)
        return 1
    for v in replayed:
        print(f"{v.id}  {v.event_type}  pending again")
    print(f"{len(replayed)} deliveries replayed")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    from gateway.events.subscriptions import failing_endpoints

    settings = command_settings(args, "webhooks alerts")
    if settings is None:
        return 2
    alerts = run_on_database(settings, lambda db: failing_endpoints(db, settings))
    for a in alerts.items:
        print(f"{a.subscription_id}  {a.url}  failing for {a.failing_for_seconds} s: {a.last_error or ''}".rstrip())
    if not alerts.items:
        print(f"no endpoint failing longer than {alerts.alert_after_seconds} s")
    return 1 if alerts.items else 0
