"""The ``fedsurv`` command: thin dispatch to the site, coordinator and audit command groups.

Every command module keeps heavy imports inside its functions, so ``fedsurv --help`` is fast.
User mistakes raise :class:`fedsurv.protocol.errors.FedsurvError`; :func:`main` prints the message
and
exits non-zero, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from fedsurv.audit_cli import app as audit_app
from fedsurv.commands import register as register_coordinator
from fedsurv.commands.site import app as site_app
from fedsurv.keys_cli import app as keys_app
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.version import PROTOCOL_VERSION, SOFTWARE_VERSION

app = typer.Typer(
    name="fedsurv",
    help="Federated survival analysis for multi-centre clinical studies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(site_app, name="site", help="Site node: check data, run the node.")
app.add_typer(keys_app, name="keys", help="Study CA, TLS certificate, site keys, enrolment.")
app.add_typer(audit_app, name="audit", help="Verify, show and cross-check audit logs.")
register_coordinator(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fedsurv {SOFTWARE_VERSION} (protocol {PROTOCOL_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Federated survival analysis for multi-centre clinical studies."""


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(standalone_mode=False)
    except FedsurvError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
