"""Entry point of the `bench` command.

Sub-commands live one per module and are imported lazily, so `bench gbcs decode` does not pay
for scapy or lxml and a log of thousands of messages decodes quickly.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from bench.errors import BenchError

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "gbcs": "bench.cli.gbcs:gbcs",
    "image": "bench.cli.image:image",
    "duis": "bench.cli.duis:duis",
    "capture": "bench.cli.capture:capture",
    "pki": "bench.cli.pki:pki",
    "emulate": "bench.cli.emulate:emulate",
    "registry": "bench.cli.registry:registry",
    "update-firmware": "bench.cli.requests:update_firmware",
    "activate": "bench.cli.requests:activate",
    "read-firmware": "bench.cli.requests:read_firmware",
    "alerts": "bench.cli.alerts:alerts",
    "audit": "bench.cli.alerts:audit",
    "rig": "bench.cli.rig:rig",
    "serve": "bench.cli.serve:serve",
    "run": "bench.cli.run:run",
    "init": "bench.cli.init:init",
    "lab": "bench.cli.lab:lab",
    "report": "bench.cli.report:report",
    "fuzz": "bench.cli.fuzz:fuzz",
    "campaign": "bench.cli.campaign:campaign",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gb-meter-bench")
def cli() -> None:
    """Hardware-in-the-loop test bench for GB smart meter firmware (SEC MP207)."""


def main() -> None:
    """Run the CLI: bench errors become one line on stderr and exit code 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        # One line, naming the command: usage text is one `--help` away.
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        click.echo(f"error: {where}{exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (BenchError, OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if os.environ.get("BENCH_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
