"""Serve the panel of one experiment as a web app (every experiment and the runs: ``workbench serve``).

    python -m workbench.panels.serve lightsb --port 5006
    python -m workbench.panels.serve lightsb --port 5006 -p steps=200 -p epsilon=0.5 --db runs/workbench.db

then open the URL it prints (with its token). ``-p key=value`` sets the form's starting values (validated
against the experiment's parameters: a bad one exits with status 2 and a message); runs are
recorded in ``--db`` (default: ``$WORKBENCH_DB`` or ``./runs/workbench.db``). Every browser session
gets its own panel; closing the tab stops its run. ``--import MODULE`` imports a module that
registers experiments of your own before looking NAME up.

Anyone who reaches the app can start runs and write to the store, so it asks for a token, as JupyterLab
does: a random one at each start, printed in the URL to open (``http://127.0.0.1:5006/?token=...``);
the first visit sets a cookie, so later requests need no token in their URL. ``--token VALUE`` or
``$WORKBENCH_TOKEN`` sets it; ``--no-token`` serves without one, allowed only on a loopback address.
It listens on 127.0.0.1 only; ``--address 0.0.0.0 --allow-websocket-origin HOST:PORT`` serves beyond
this machine, with a warning.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import secrets
import sys

from workbench.experiment import ConfigError

LOOPBACK = "127.0.0.1"
TOKEN_ENV = "WORKBENCH_TOKEN"
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved in a URL and allowed in a cookie as they are


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
    access = parser.add_mutually_exclusive_group()
    access.add_argument("--token", help=f"the token every request must carry (default: ${TOKEN_ENV}, else a random "
                        "one); the printed URL carries it")
    access.add_argument("--no-token", action="store_true",
                        help="serve without a token: anyone on this machine can use the app (loopback --address only)")


def access_token(args: argparse.Namespace) -> str | None:
    """The token every request must carry: ``--token``, else ``$WORKBENCH_TOKEN``, else a fresh random one;
    None with ``--no-token``, which only a loopback ``--address`` allows. Raises ConfigError naming the option."""
    if args.no_token:
        if not is_loopback(args.address):
            raise ConfigError(f"--no-token is allowed only with a loopback --address (127.0.0.1, ::1 or localhost), "
                              f"got --address {args.address}: anyone who reaches it could start runs; use a token")
        return None
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(32)
    if not TOKEN_CHARACTERS.fullmatch(token):
        source = "--token" if args.token is not None else f"${TOKEN_ENV}"
        raise ConfigError(f"{source} = {token!r} is not allowed; expected one or more letters, digits and ._~- "
                          "(--no-token serves without a token, on a loopback --address only)")
    return token


def app_url(args: argparse.Namespace, token: str | None) -> str:
    """The URL that opens the app, with its token."""
    host = f"[{args.address}]" if ":" in args.address else args.address
    return f"http://{host}:{args.port}/" + (f"?token={token}" if token else "")


def serve(routes: dict, args: argparse.Namespace, store, title: str, token: str | None,
          static_dirs: dict[str, str] | None = None) -> None:
    """Serve ``routes`` ({route: page function}) and ``static_dirs`` ({route: folder}) as
    :func:`add_server_options` asked, to requests carrying ``token`` (every one when None, see
    :func:`access_token`); print the URL to open; warn beyond loopback."""
    import webbrowser

    import panel as pn

    if not is_loopback(args.address):
        print(f"warning: listening on {args.address}, beyond this machine: anyone who reaches port {args.port} with "
              f"the token can start runs and write to {store.path}", file=sys.stderr, flush=True)
    access = {}
    if token is not None:
        from workbench.panels.access import TokenAuth

        auth = TokenAuth(token, args.port)
        access = {"auth_provider": auth, "exclude_cookies": [auth.cookie]}  # not copied into the sessions' state
    url = app_url(args, token)
    server = pn.serve(routes, port=args.port, address=args.address, show=False, start=False, verbose=False,
                      title=title, websocket_origin=args.allow_websocket_origin, static_dirs=static_dirs or {},
                      **access)
    print(f"serving {title} at {url} (runs -> {store.path})", flush=True)
    if args.show:
        server.io_loop.add_callback(webbrowser.open, url)
    server.start()
    server.io_loop.start()


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

    from workbench.experiment import configure, parse_overrides

    try:
        token = access_token(args)
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

    serve({"/": app}, args, store, title=f"workbench: {args.name}", token=token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
