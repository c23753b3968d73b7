"""The ``--config`` option of the hub commands that read the hub config file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.hub.service.hub_config import DEFAULT_HUB_CONFIG_PATH, HubConfig, load_hub_config

CONFIG_ENV = "LFR_HUB_CONFIG"


def add_hub_config_arg(p: argparse.ArgumentParser) -> None:
    # Its own dest: ``config`` would be taken for the device config by the shared CLI code.
    p.add_argument(
        "--config",
        dest="hub_config",
        type=Path,
        default=None,
        help=f"hub config file (default: ${CONFIG_ENV} or {DEFAULT_HUB_CONFIG_PATH})",
    )


def hub_config(args: argparse.Namespace) -> HubConfig:
    given = args.hub_config or os.environ.get(CONFIG_ENV) or DEFAULT_HUB_CONFIG_PATH
    return load_hub_config(Path(given))
