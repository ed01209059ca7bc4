"""`onewindow serve`: the gateway on embedded defaults, or PostgreSQL/Redis from the environment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.settings import SettingsError, load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--config", type=Path, help="TOML settings file ([gateway] table)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    try:
        settings = load_settings(args.config, host=args.host, port=args.port, data_dir=args.data_dir)
    except SettingsError as exc:
        print(f"onewindow serve: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
    except Exception as exc:  # refuse to start, saying why (broken catalog, bad keys, …)
        print(f"onewindow serve: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"OneWindow gateway on http://{settings.host}:{settings.port}  (docs: /schema/swagger)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", loop="auto", http="httptools")
    return 0
