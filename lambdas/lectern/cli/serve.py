"""`lectern up`: the local server (API, page, worker, model)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from lectern.cli import common
from lectern.cli.common import DataDir, _frontend, app


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8000,
    data_dir: DataDir = None,
) -> None:
    """Start the web page and REST API."""
    from lectern.local.server import LocalServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = common._settings(data_dir, host=host, port=port)
    if not settings.data_dir.is_dir():
        print(f"Creating a new data directory at {settings.data_dir.resolve()}", flush=True)
    lectern = common._build(settings)
    try:
        server = LocalServer(host, port, lectern.make_app, _frontend(), settings.max_upload_bytes + 1024 * 1024)
    except OSError as exc:
        common.err.print(f"[red]Cannot listen on {host}:{port}: {exc.strerror}[/red]")
        raise typer.Exit(1) from None
    if port == 0:  # the real port is known only now: upload slots must point at it
        lectern.signer.base_url = server.url
    resumed = lectern.worker.recover()
    lectern.worker.run_forever()
    warm = getattr(lectern.model, "warm", None)
    if warm:
        warm()
    stop = threading.Event()

    def _shutdown(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    print(f"Lectern is running on {server.url}  (data: {settings.data_dir.resolve()})", flush=True)
    first_key = lectern.ensure_first_key()
    if first_key:
        print(
            f"Sign in with this API key (tenant {settings.tenant_id!r}); it is shown only now, keep it:\n"
            f"    {first_key}\nMore keys: lectern keys create --tenant NAME",
            flush=True,
        )
    if resumed:
        print(f"Resuming ingestion of {resumed} document(s) left unfinished.", flush=True)
    from lectern.local.running import Announcement

    # `lectern ask` on this data dir finds this server (and a key for it) and asks it instead of loading a model
    keys = lectern.keys if settings.auth == "api_key" else None
    announced = Announcement(settings.data_dir, server.url, keys, settings.tenant_id)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        announced.withdraw()
        server.server_close()
        lectern.close()
