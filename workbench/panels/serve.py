"""Serve the panel of one experiment as a web app (every experiment and the runs: ``workbench serve``).

    python -m workbench.panels.serve lightsb --port 5006
    python -m workbench.panels.serve lightsb --port 5006 -p steps=200 -p epsilon=0.5 --db runs/workbench.db

then open http://localhost:5006/. ``-p key=value`` sets the form's starting values (validated
against the experiment's parameters: a bad one exits with status 2 and a message); runs are
recorded in ``--db`` (default: ``$WORKBENCH_DB`` or ``./runs/workbench.db``). Every browser session
gets its own panel; closing the tab stops its run. ``--import MODULE`` imports a module that
registers experiments of your own before looking NAME up. It listens on 127.0.0.1 only: anyone who
reaches the app can start runs and write to the store. ``--address 0.0.0.0 --allow-websocket-origin
HOST:PORT`` serves beyond this machine, with a warning.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

LOOPBACK = "127.0.0.1"


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or "localhost") is reachable from this machine only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def add_server_options(parser: argparse.ArgumentParser, db: bool = True) -> None:
    """The options every served app of the package takes: where it listens, what it imports, where runs go
    (``db=False``: the parser has ``--db`` already)."""
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK}: this machine only)")
    if db:
        parser.add_argument("--db", default=None, help="run store path (default: $WORKBENCH_DB or ./runs/workbench.db)")
    parser.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (a module that registers your own experiments; repeatable)")
    parser.add_argument("--show", action="store_true", help="open a browser tab")


def serve(routes: dict, args: argparse.Namespace, store, title: str, static_dirs: dict[str, str] | None = None) -> None:
    """Serve ``routes`` ({route: page function}) as :func:`add_server_options` asked; warn beyond loopback."""
    import panel as pn

    if not is_loopback(args.address):
        print(f"warning: listening on {args.address}, beyond this machine: anyone who reaches port {args.port} can "
              f"start runs and write to {store.path}", file=sys.stderr, flush=True)
    print(f"serving {title} at http://{args.address}:{args.port}/ (runs -> {store.path})", flush=True)
    pn.serve(routes, port=args.port, address=args.address, show=args.show, title=title,
             websocket_origin=args.allow_websocket_origin, static_dirs=static_dirs or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.panels.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="registered experiment name (see `workbench list`)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="starting value of a parameter (repeatable)")
    add_server_options(parser)
    args = parser.parse_args(argv)

    import importlib

    for module in args.imports:
        importlib.import_module(module)

    from workbench.cli import parse_overrides
    from workbench.experiment import ConfigError, configure

    try:
        initial = configure(args.name, **parse_overrides(args.param))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import panel as pn

    from workbench.panels.base import ExperimentPanel
    from workbench.store import RunStore

    pn.extension("plotly")
    store = RunStore(args.db)  # one store for every session; each write is its own transaction

    def app():
        panel = ExperimentPanel(initial, store=store)
        pn.state.on_session_destroyed(lambda _context: panel.stop())
        return panel.layout

    serve({"/": app}, args, store, title=f"workbench: {args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
