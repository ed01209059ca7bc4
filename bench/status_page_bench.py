"""The citizen's status page (``POST /track``, the form the page and its QR code submit) vs a bare Litestar
endpoint, served the same way in the same run, with wrk at 64 connections; and what each page weighs.

    .venv/bin/python -m bench.status_page_bench [--duration 15] [--warmup 3] [--connections 64] [--workers 1]

1. prepares a data dir (temporary) with one accepted application (`bench/prepare.py`);
2. serves ``bench.bare_page_app:create_bare_page_app`` (a static page of the same size) and then
   ``gateway.app:create_app`` with the same uvicorn flags; checks the status page shows the case; runs wrk (a
   warm-up, then the measured run) posting the form with the tracking number and query code (``wrk -s``);
3. weighs the pages: each page's HTML plus every stylesheet, script and image it loads, as sent;
4. prints the table and the verdicts: p99 ≤ 50 ms at 64 connections; every page ≤ 100 KB with its assets.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import httpx
import msgspec

from bench.harness import AsgiServer, ServerFlags, WrkResult, machine, measure, parse_wrk, wrk_path
from bench.prepare import prepare_data_dir, server_env

TARGET_P99_MS = 50.0
TARGET_PAGE_BYTES = 100 * 1024
_ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')


class Weight(msgspec.Struct, kw_only=True):
    page: str
    html_bytes: int
    asset_bytes: int
    total_bytes: int


class Row(msgspec.Struct, kw_only=True):
    app: str
    flags: str
    result: WrkResult


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, str]
    load_average: str
    rows: list[Row]
    weights: list[Weight]
    verdicts: list[str]


def _lua(body: str) -> str:
    return (
        f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )


def _wrk(url: str, script: Path, *, connections: int, threads: int, duration_s: float) -> WrkResult:
    cmd = [
        wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--timeout=5s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration_s + 60).stdout
    return parse_wrk(out, url=url, connections=connections, threads=threads, duration_s=duration_s)


def _weigh(client: httpx.Client, name: str, response: httpx.Response) -> Weight:
    html = len(response.content)
    assets = sum(len(client.get(path).content) for path in sorted(set(_ASSET.findall(response.text))))
    return Weight(page=name, html_bytes=html, asset_bytes=assets, total_bytes=html + assets)


def _weights(base_url: str, form: dict[str, str], clerk_token: str) -> list[Weight]:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        weights = [
            _weigh(client, "GET /track (form)", client.get("/track")),
            _weigh(client, "POST /track (status)", client.post("/track", data=form)),
            _weigh(client, "GET /console (sign-in)", client.get("/console")),
        ]
        sign_in = client.get("/console")
        csrf = re.search(r'name="csrf" value="([^"]+)"', sign_in.text)
        assert csrf is not None
        client.post("/console/sign-in", data={"csrf": csrf.group(1), "next": "/console", "token": clerk_token})
        home = client.get("/console", params={"q": "hlbt"})
        weights.append(_weigh(client, "GET /console (clerk, search)", home))
        case = re.search(r'href="(/console/applications/[0-9a-f]{32})"', home.text)
        if case:
            weights.append(_weigh(client, "GET case page", client.get(case.group(1))))
            weights.append(_weigh(client, "GET receipt (受理通知书)", client.get(case.group(1) + "/receipt")))
    return weights


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    wrk_path()
    with tempfile.TemporaryDirectory(prefix="onewindow-bench-") as tmp:
        data_dir = (Path(tmp) / "var").resolve()
        print(f"preparing {data_dir} …", flush=True)
        prepared = asyncio.run(prepare_data_dir(data_dir))
        form = {"tracking_number": prepared.tracking_number, "code": prepared.query_code}
        script = Path(tmp) / "post.lua"
        script.write_text(_lua(urlencode(form)))
        env = server_env(data_dir)
        flags = ServerFlags(workers=args.workers)
        rows: list[Row] = []
        loads: list[str] = [_load()]
        with AsgiServer("gateway.app:create_app", flags=flags, env=env) as server:
            page = httpx.post(server.base_url + "/track", data=form, timeout=10.0)
            if page.status_code != 200 or prepared.tracking_number not in page.text:
                raise SystemExit(f"the status page does not show the case: {page.status_code}")
            page_bytes = len(page.content)
            weights = _weights(server.base_url, form, prepared.tokens["clerk"])
        env_bare = env | {"BARE_PAGE_BYTES": str(page_bytes)}
        for app, factory, app_env in (
            ("bare", "bench.bare_page_app:create_bare_page_app", env_bare),
            ("status page", "gateway.app:create_app", env),
        ):
            with AsgiServer(factory, flags=flags, env=app_env) as server:
                url = server.base_url + "/track"
                if args.warmup > 0:
                    _wrk(url, script, connections=args.connections, threads=args.threads, duration_s=args.warmup)
                loads.append(_load())
                result = _wrk(url, script, connections=args.connections, threads=args.threads, duration_s=args.duration)
                loads.append(_load())
                after = httpx.post(server.base_url + "/track", data=form, timeout=10.0)
                if after.status_code != 200:
                    raise SystemExit(f"{app} stopped answering correctly after the load: {after.status_code}")
                results: list[tuple[str, WrkResult]] = [(app, result)]
                if app == "status page":
                    # The JSON lookup of the same case on the same server: what the page adds to it.
                    api_url = f"{server.base_url}/api/v1/track/{prepared.tracking_number}?code={prepared.query_code}"
                    json_api = measure(
                        api_url, connections=args.connections, threads=args.threads, duration_s=args.duration
                    )
                    results.append(("json api", json_api))
                    loads.append(_load())
            for name, r in results:
                rows.append(Row(app=name, flags=flags.describe(), result=r))
                latency = f"p50 {r.p50_ms:.2f}  p90 {r.p90_ms:.2f}  p99 {r.p99_ms:.2f} ms"
                print(f"{name:<12} {r.requests_per_s:>8.0f} req/s  {latency}  non-2xx {r.non_2xx}", flush=True)
    status = next(r for r in rows if r.app == "status page").result
    bare = next(r for r in rows if r.app == "bare").result
    api = next(r for r in rows if r.app == "json api").result
    heaviest = max(weights, key=lambda w: w.total_bytes)
    verdicts = [
        f"status page p99 {status.p99_ms:.1f} ms at {args.connections} connections (bare {bare.p99_ms:.1f} ms; "
        f"{status.requests_per_s:.0f} vs {bare.requests_per_s:.0f} req/s; the JSON lookup on the same server p99 "
        f"{api.p99_ms:.1f} ms, {api.requests_per_s:.0f} req/s), target ≤ {TARGET_P99_MS:g} ms: "
        f"{'MET' if status.p99_ms <= TARGET_P99_MS and status.non_2xx == 0 else 'MISSED'}",
        f"heaviest page {heaviest.page}: {heaviest.total_bytes} bytes with its assets, target ≤ {TARGET_PAGE_BYTES}: "
        f"{'MET' if all(w.total_bytes <= TARGET_PAGE_BYTES for w in weights) else 'MISSED'}",
    ]
    for w in weights:
        print(f"{w.page:<32} html {w.html_bytes:>7}  assets {w.asset_bytes:>7}  total {w.total_bytes:>7} bytes")
    for v in verdicts:
        print(v)
    load = " → ".join(loads)
    print(f"load average (1, 5, 15 min) before/during: {load}")
    print(msgspec.json.encode(machine()).decode())
    if args.json:
        report = Report(machine=machine(), load_average=load, rows=rows, weights=weights, verdicts=verdicts)
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
