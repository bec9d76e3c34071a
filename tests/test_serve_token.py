"""`workbench serve` and `python -m workbench.panels.serve` ask for a token, as JupyterLab does: a request
without it is refused (403), the websocket handshake too; `?token=` lets in and sets a cookie that then
suffices; `/files` serves the store's folder and nothing outside it. The servers run for real, in a
subprocess on a free port."""
from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from support import free_port, served, subprocess_env

from workbench.experiment import ConfigError
from workbench.panels.serve import TOKEN_ENV, access_token, add_server_options

APP = [sys.executable, "-m", "workbench.cli", "serve"]
PANEL = [sys.executable, "-m", "workbench.panels.serve", "lightsb"]


class App:
    """The served app: its base URL, token, cookie name and the folder of its store."""

    def __init__(self, url: str, folder: Path):
        parts = urllib.parse.urlsplit(url)
        self.base, self.port = f"{parts.scheme}://{parts.netloc}", parts.port
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]
        self.cookie = f"workbench-token-{self.port}"
        self.folder = folder

    def get(self, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of GET ``path`` sent as written (no ``..`` resolved on the way)."""
        if token is not None:
            path += ("&" if "?" in path else "?") + f"token={token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers={"Cookie": f"{self.cookie}={cookie}"} if cookie else {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> App:
    """``workbench serve`` with its random token, over a store folder holding a file, a symlink to a file outside
    the folder, and that outside file."""
    root = tmp_path_factory.mktemp("serve")
    folder = root / "runs"
    (folder / "notebooks").mkdir(parents=True)
    (folder / "notebooks" / "run.ipynb").write_text("inside the store")
    (root / "secret.txt").write_text("outside the store")
    (folder / "link.txt").symlink_to(root / "secret.txt")
    with served([*APP, "--port", str(free_port())], root, root / "serve.log",
                WORKBENCH_DB=str(folder / "workbench.db")) as (_, url):
        yield App(url, folder)


def test_the_printed_url_carries_a_random_token(app):
    assert len(app.token) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", app.token)


@pytest.mark.parametrize("route", ["/", "/runs", "/lightsb", "/runs/autoload.js?bokeh-autoload-element=x"])
def test_a_page_without_the_token_is_refused(app, route):
    status, _, body = app.get(route)
    assert status == 403, (route, status)
    assert b"token" in body  # the page says what is missing
    assert app.get(route, token="not-" + app.token)[0] == 403
    assert app.get(route, cookie="not-" + app.token)[0] == 403


@pytest.mark.parametrize("route", ["/", "/runs"])
def test_the_token_lets_in_and_sets_a_cookie_that_then_suffices(app, route):
    status, headers, _ = app.get(route, token=app.token)
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{app.cookie}={app.token};") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert app.get(route, cookie=app.token)[0] == 200  # no token in the URL: the cookie alone


def test_files_needs_the_token_and_serves_the_store_folder(app):
    assert app.get("/files/notebooks/run.ipynb")[0] == 403
    status, _, body = app.get("/files/notebooks/run.ipynb", cookie=app.token)
    assert (status, body) == (200, b"inside the store")


@pytest.mark.parametrize("path", ["/files/../secret.txt", "/files/notebooks/../../secret.txt",
                                  "/files/%2e%2e/secret.txt", "/files/..%2fsecret.txt", "/files/link.txt"])
def test_files_serves_nothing_outside_the_store_folder(app, path):
    status, _, body = app.get(path, cookie=app.token)
    assert status in (403, 404), (path, status)
    assert b"outside the store" not in body
    assert (app.folder.parent / "secret.txt").read_text() == "outside the store"  # it is there to be read


def websocket_status(app: App, route: str, cookie: str | None) -> str:
    """Open the Bokeh websocket of ``route`` with a session token from its page: "ACK" when the server
    accepted it (its first message), else the HTTP status that refused the handshake."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    _, _, page = app.get(route, token=app.token)
    session = re.search(rb'"token":"([^"]+)"', page).group(1).decode()

    async def connect() -> str:
        request = HTTPRequest(f"ws://127.0.0.1:{app.port}{route.rstrip('/')}/ws",
                              headers={"Cookie": f"{app.cookie}={cookie}"} if cookie else {})
        try:
            connection = await websocket_connect(request, subprotocols=["bokeh", session])
        except HTTPClientError as error:
            return str(error.code)
        try:
            return "ACK" if '"ACK"' in await connection.read_message() else "no ACK"
        finally:
            connection.close()

    return asyncio.run(connect())


@pytest.mark.parametrize("route", ["/runs", "/"])
def test_the_websocket_needs_the_token(app, route):
    assert websocket_status(app, route, cookie=None) == "403"
    assert websocket_status(app, route, cookie="not-" + app.token) == "403"
    assert websocket_status(app, route, cookie=app.token) == "ACK"


@pytest.mark.slow
def test_the_panel_alone_takes_the_token_from_the_environment_or_the_option(tmp_path):
    port = free_port()
    env = {"WORKBENCH_DB": str(tmp_path / "runs.db"), TOKEN_ENV: "from-the-environment"}
    with served([*PANEL, "--port", str(port)], tmp_path, tmp_path / "panel.log", **env) as (_, url):
        assert url == f"http://127.0.0.1:{port}/?token=from-the-environment"
        panel = App(url, tmp_path)
        assert panel.get("/")[0] == 403 and panel.get("/", token="from-the-environment")[0] == 200
    port = free_port()
    with served([*PANEL, "--port", str(port), "--token", "from.the~option"], tmp_path, tmp_path / "panel2.log",
                **env) as (_, url):
        assert url == f"http://127.0.0.1:{port}/?token=from.the~option"
        panel = App(url, tmp_path)
        assert panel.get("/", token="from-the-environment")[0] == 403 and panel.get("/", cookie="from.the~option")[0] == 200


@pytest.mark.slow
def test_no_token_on_loopback_serves_without_one(tmp_path):
    port = free_port()
    with served([*APP, "--port", str(port), "--no-token"], tmp_path, tmp_path / "serve.log",
                WORKBENCH_DB=str(tmp_path / "runs" / "workbench.db")) as (_, url):
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"{url}runs", timeout=60) as response:
            assert response.status == 200


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_options(parser)
    return parser.parse_args(list(argv))


def test_access_token_prefers_the_option_then_the_environment_then_a_random_one(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "env")
    assert access_token(options("--token", "option")) == "option"
    assert access_token(options()) == "env"
    monkeypatch.delenv(TOKEN_ENV)
    first, second = access_token(options()), access_token(options())
    assert first != second and len(first) >= 32
    assert access_token(options("--no-token")) is None
    assert access_token(options("--no-token", "--address", "::1")) is None


@pytest.mark.parametrize("argv, named", [(["--no-token", "--address", "0.0.0.0"], "--no-token"),
                                         (["--no-token", "--address", "192.168.1.5"], "--no-token"),
                                         (["--token", ""], "--token"), (["--token", "a b"], "--token"),
                                         (["--token", "a;b"], "--token")])
def test_access_token_refuses_what_is_not_allowed_naming_the_option(argv, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        access_token(options(*argv))


def test_the_token_options_exclude_each_other():
    with pytest.raises(SystemExit):
        options("--token", "x", "--no-token")


@pytest.mark.parametrize("command", [APP, PANEL], ids=["workbench serve", "python -m workbench.panels.serve"])
def test_no_token_beyond_loopback_exits_2_before_serving(command, tmp_path):
    done = subprocess.run([*command, "--port", str(free_port()), "--no-token", "--address", "0.0.0.0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=subprocess_env(WORKBENCH_DB=str(tmp_path / "runs.db")))
    assert done.returncode == 2, done.stderr
    assert "--no-token is allowed only with a loopback --address" in done.stderr
    assert "serving" not in done.stdout
