"""Several broker endpoints: how cameras (``[mqtt] fallback``) and hub commands
(``--broker A,B``) name them, and the one-line errors for bad ones."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agent.cli.hub_commands.broker_args import settings_from_args
from agent.config import ConfigError, parse_config
from agent.errors import UsageError
from agent.transport.mqtt_link import MqttLinkError, MqttSettings, parse_endpoint


def test_endpoints_parse_and_bad_ones_are_named() -> None:
    assert parse_endpoint("broker-b.example.org:8883") == ("broker-b.example.org", 8883)
    for bad in ("broker-b", ":8883", "b:0", "b:65536", "b:x"):
        with pytest.raises(MqttLinkError, match="expected HOST:PORT"):
            parse_endpoint(bad)


def test_the_camera_config_lists_fallback_brokers() -> None:
    cfg = parse_config(
        {
            "device": {"id": "lfr-x-01"},
            "mqtt": {"host": "a.example", "fallback": ["b.example:8884"]},
        }
    )
    s = MqttSettings.from_config(cfg.mqtt, "lfr-x-01")
    assert s.endpoints == (("a.example", 8883), ("b.example", 8884))
    for bad, problem in (
        (["b.example"], "does not match"),
        (["b.example:99999"], "port must be 1-65535"),
        ("b.example:8883", "must be an array"),
    ):
        with pytest.raises(ConfigError, match=problem):
            parse_config({"device": {"id": "lfr-x-01"}, "mqtt": {"fallback": bad}})


def test_hub_commands_take_several_brokers(tmp_path: Path) -> None:
    args = argparse.Namespace(
        broker="a.example:8883,b.example:8884",
        pki_dir=tmp_path,
        identity="w1",
        ca=None,
        cert=None,
        key=None,
    )
    settings = settings_from_args(args)
    assert settings.endpoints == (("a.example", 8883), ("b.example", 8884))
    assert settings.client_id == "hub.w1"
    args.broker = "a.example:8883,"
    with pytest.raises(UsageError, match="expected HOST:PORT"):
        settings_from_args(args)
