"""The sandbox's flags, the same in ``python -m chat.sandbox.server`` and ``manage.py vizochok_sandbox``."""

from __future__ import annotations

import argparse
from dataclasses import astuple
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from chat.management.commands.vizochok_sandbox import Command
from chat.sandbox.server import SandboxConfig, add_arguments, config_from_options, main

SWITCHES = [
    "--error-completes",
    "--complete-twice",
    "--block-after-complete",
    "--repeat-frames",
    "--late-complete-seconds",
    "0.5",
    "--turns-outlive-socket",
    "--count-before-auth",
    "--restored-items",
    "sku_quantity",
    "--restored-without-id",
    "--replay-history",
    "--refuse-actions",
    "--resume-in-auth",
    "ignored",
    "--no-json-pongs",
    "--pings-count",
    "--ui-shapes",
    "plain",
]


def python_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def command_parser() -> argparse.ArgumentParser:
    return Command().create_parser("manage.py", "vizochok_sandbox")


def switches(config: SandboxConfig) -> dict[str, Any]:
    names = (
        "error_completes",
        "complete_twice",
        "block_after_complete",
        "repeat_frames",
        "late_complete_seconds",
        "turns_outlive_socket",
        "count_before_auth",
        "restored_items",
        "restored_without_id",
        "replay_history",
        "refuse_actions",
        "resume_in_auth",
        "json_pongs",
        "pings_count",
        "ui_shapes",
    )
    return {name: getattr(config, name) for name in names}


@pytest.mark.parametrize("parser", [python_parser, command_parser])
def test_every_switch_has_a_flag(parser: Any) -> None:
    config = config_from_options(vars(parser().parse_args(["--pace", "0", "--max-connections", "9", *SWITCHES])))
    assert switches(config) == {
        "error_completes": True,
        "complete_twice": True,
        "block_after_complete": True,
        "repeat_frames": True,
        "late_complete_seconds": 0.5,
        "turns_outlive_socket": True,
        "count_before_auth": True,
        "restored_items": "sku_quantity",
        "restored_without_id": True,
        "replay_history": True,
        "refuse_actions": True,
        "resume_in_auth": "ignored",
        "json_pongs": False,
        "pings_count": True,
        "ui_shapes": "plain",
    }
    assert (config.tokens_per_second, config.max_connections_per_key) == (0.0, 9)


@pytest.mark.parametrize("parser", [python_parser, command_parser])
def test_no_flags_is_the_default_config(parser: Any) -> None:
    config = config_from_options(vars(parser().parse_args([])))
    assert astuple(config) == astuple(SandboxConfig())


def test_bad_values_are_refused_before_serving() -> None:
    with pytest.raises(CommandError, match="late-complete-seconds"):
        call_command("vizochok_sandbox", "--late-complete-seconds", "-1")
    with pytest.raises(CommandError, match="max-connections"):
        call_command("vizochok_sandbox", "--max-connections", "0")
    with pytest.raises(SystemExit) as exit_info:
        main(["--late-complete-seconds", "nan"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("field", ["restored_items", "resume_in_auth", "ui_shapes"])
def test_a_reading_the_sandbox_does_not_know_is_refused_when_configured(field: str) -> None:
    reading: dict[str, Any] = {field: "no-such-reading"}
    with pytest.raises(ValueError, match=field):
        SandboxConfig(**reading)
