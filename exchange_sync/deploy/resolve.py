"""CLI arguments that are ``NAME|CONFIG``: a configuration file, or an integration name.

A name is looked up in ``./deployments/*.yaml`` first (the project the operator stands in), then
in the Prefect server's deployment ``exchange-sync/<name>`` (its ``config`` parameter, which may
have been edited in the UI). In that case the process moves to the deployment's working directory,
so that relative paths in the configuration (SQLite files, staging) mean what they mean for runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from exchange_sync.config import _NAME_RE, ConfigError, IntegrationConfig, load_config
from exchange_sync.deploy.names import FLOW_NAME


def is_config_path(arg: str) -> bool:
    return Path(arg).is_file()


def looks_like_path(arg: str) -> bool:
    """A path, not an integration name: names are lowercase letters, digits, '-' and '_' only."""
    return "/" in arg or "\\" in arg or arg.lower().endswith((".yaml", ".yml")) or not _NAME_RE.match(arg)


def _declared_name(path: Path) -> str | None:
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - unreadable: it declares nothing we can read
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def from_project(name: str, project: Path) -> IntegrationConfig | None:
    """The configuration named ``name`` in ``project/deployments``. A file that is meant to be it
    (``<name>.yaml``, or a file that says ``name: <name>``) but does not validate raises its
    ``ConfigError``: the operator needs the validation error, not "unknown integration"."""
    for path in sorted((project / "deployments").glob("*.y*ml")):
        try:
            cfg = load_config(path)
        except ConfigError:
            if path.stem == name or _declared_name(path) == name:
                raise
            continue
        if cfg.name == name:
            return cfg
    return None


def from_server(name: str) -> IntegrationConfig | None:
    from exchange_sync.prefect_env import configure_prefect_defaults, watch_temporary_server

    configure_prefect_defaults()
    watch_temporary_server()  # without PREFECT_API_URL: no temporary server outlives a killed command
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
        except ObjectNotFound:
            return None
    from exchange_sync.forms import config_from_parameters

    cfg = config_from_parameters(dep.parameters or {})
    for step in dep.pull_steps or []:
        target = (step.get("prefect.deployments.steps.set_working_directory") or {}).get("directory")
        if target and Path(target).is_dir():
            os.chdir(target)
    return cfg


def resolve(arg: str, project: Path | None = None) -> IntegrationConfig:
    """Raises ``ConfigError`` with a message for the user when nothing matches."""
    if is_config_path(arg):
        return load_config(arg)
    if Path(arg).exists():
        raise ConfigError(f"{arg!r} is not a configuration file")
    if looks_like_path(arg):
        # Never go on to ask (or start) a Prefect server for something that is a mistyped path.
        raise ConfigError(f"no such configuration file: {arg!r}")
    cfg = from_project(arg, project or Path.cwd())
    if cfg is None:
        try:
            cfg = from_server(arg)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - no server reachable: say what was tried
            raise ConfigError(f"{arg!r} is not a file, not an integration in ./deployments, and the Prefect "
                              f"server could not be asked ({type(exc).__name__})") from None
    if cfg is None:
        raise ConfigError(f"{arg!r} is neither a configuration file nor a known integration name "
                          f"(./deployments/*.yaml or deployment {FLOW_NAME}/{arg})")
    return cfg
