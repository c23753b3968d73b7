from __future__ import annotations

import pytest

from agent.protocol.topics import (
    TopicError,
    ack_topic,
    alert_topic,
    parse_topic,
    shared_subscription,
    topic,
)


def test_topic_names_are_versioned_and_parse_back() -> None:
    assert alert_topic("lfr-demo-01") == "lfr/v1/lfr-demo-01/alert"
    assert ack_topic("d1") == "lfr/v1/d1/ack"
    for kind in ("activation", "watchlist", "alert", "ack", "status", "event"):
        assert parse_topic(topic("d1", kind)) == ("d1", kind)
    assert shared_subscription("hubs", "lfr/v1/+/alert") == "$share/hubs/lfr/v1/+/alert"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "lfr/v1/d1",
        "lfr/v2/d1/alert",
        "lfr/v1/D1/alert",
        "lfr/v1/+/alert",
        "lfr/v1/d1/x",
        "lfr/v1/d1/alert/extra",
        "lfr/v1/hub.main/alert",
    ],
)
def test_bad_topics_are_refused(bad: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(bad)


def test_bad_ids_and_kinds_are_refused() -> None:
    with pytest.raises(TopicError):
        topic("a/b", "alert")
    with pytest.raises(TopicError):
        topic("d1", "secrets")
    with pytest.raises(TopicError):
        shared_subscription("a/b", "x")
