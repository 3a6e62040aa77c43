"""The engine's word on the pjsua2 it loaded."""

from __future__ import annotations

import logging

import pytest

from ivr.config import SipSettings
from ivr.sip.build import PjBuild, warn_if_wheel


def test_the_wheel_gets_one_clear_warning_and_four_calls_per_worker(
        caplog: pytest.LogCaptureFixture) -> None:
    wheel = PjBuild(version="2.15.1.post1", build="wheel", max_calls=4, srtp=False)
    with caplog.at_level(logging.WARNING, logger="ivr.sip"):
        warn_if_wheel(wheel)
    (record,) = caplog.records
    assert "PyPI wheel" in record.getMessage() and "4 calls per worker" in record.getMessage()
    # the pool follows the library, not the config: 40 calls need 10 workers of 4
    assert SipSettings(max_calls=40).worker_limits(wheel.max_calls, 2) == [4] * 10


def test_a_source_build_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    source = PjBuild(version="2.16", build="source", max_calls=512, srtp=True)
    with caplog.at_level(logging.WARNING, logger="ivr.sip"):
        warn_if_wheel(source)
    assert caplog.records == []
    assert source.as_json() == {"version": "2.16", "build": "source", "max_calls": 512, "srtp": True}
