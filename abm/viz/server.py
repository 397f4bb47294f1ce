"""``ree viz``: serve the browser app (abm/viz/app.py) with Solara, with no internet access.

Solara's page loads its JavaScript, CSS and fonts from a CDN unless its asset proxy finds
them on disk: the ``solara-assets`` package installs them into ``<venv>/share/solara/cdn``,
the proxy's cache directory, and ``SOLARA_ASSETS_PROXY=true`` makes the server hand them
out from there. Telemetry and Solara's version check (both network calls) are off.
"""

import errno
import os
import socket
import sys
import warnings
from pathlib import Path

from abm.schema import ScenarioError

APP = "abm.viz.app"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

# Set before solara is imported: its settings read the environment once.
OFFLINE_ENVIRONMENT = {
    "SOLARA_ASSETS_PROXY": "true",
    "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "false",
}


def assets_directory() -> Path:
    """Where solara-assets put the front-end files (the asset proxy's cache)."""
    return Path(sys.prefix) / "share" / "solara" / "cdn"


def check_assets() -> str | None:
    """None when the front-end assets are installed, else what to do about it."""
    try:
        import solara_assets  # noqa: F401
    except ImportError:
        return "the solara-assets package is missing: run scripts/setup.sh (or pip install solara-assets)"
    if not (assets_directory() / "requirejs@2.3.6").is_dir():
        return f"solara-assets did not install its files in {assets_directory()}: reinstall it"
    return None


def check_address(host: str, port: int) -> None:
    """Refuse, as one line, a port outside 1-65535, a host this machine cannot listen on,
    or a port already taken, by binding a socket there once (and closing it)."""
    if not 1 <= port <= 65535:
        raise ScenarioError("--port", "port", port, "a port number in [1, 65535]")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise ScenarioError("--host", "host", host, f"an address of this machine ({error})") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise ScenarioError("--port", "port", port, f"a free port this user may open ({error.strerror})") from None
            raise ScenarioError("--host", "host", host, f"an address of this machine ({error.strerror})") from None


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}/"


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Run the Solara server in this process until Ctrl+C; return an exit status."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    check_address(host, port)
    problem = check_assets()
    if problem:
        print(f"ree viz: {problem}", file=sys.stderr)
        return 1
    import click
    from solara.__main__ import cli

    # Served over plain http on a local address, where Solara's session cookie simply stays
    # samesite=lax; its warning about that on the first page load is noise here.
    warnings.filterwarnings("ignore", message="Cookies with samesite=none require https")
    print(f"ree viz: serving the browser app at {url(host, port)} (Ctrl+C stops it)", flush=True)
    arguments = ["run", APP, "--host", host, "--port", str(port), "--production", "--no-open", "--no-check-version"]
    try:
        cli.main(args=arguments, prog_name="solara", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        print("ree viz: stopped", flush=True)
    return 0
