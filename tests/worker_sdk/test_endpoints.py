"""Orchestrator URL failover (pure logic)."""

from __future__ import annotations

import pytest

from avtomatika.worker import WorkerError
from avtomatika.worker.endpoints import OrchestratorUrls

A, B, C = "http://a:8080", "http://b:8080", "https://c"


def test_urls_are_normalized_and_deduplicated() -> None:
    urls = OrchestratorUrls([A + "/", B, A])
    assert urls.urls == (A, B)
    assert OrchestratorUrls(A).urls == (A,)


@pytest.mark.parametrize("bad", [[], ["ftp://a"], ["a:8080"], ["http://a?x=1"], [""]])
def test_bad_urls_are_refused(bad: list[str]) -> None:
    with pytest.raises(WorkerError):
        OrchestratorUrls(bad)


def test_failure_rotates_to_the_next_url_and_backs_off_only_after_a_full_round() -> None:
    urls = OrchestratorUrls([A, B, C])
    assert urls.report_failure(A) is False
    assert urls.current == B
    assert urls.report_failure(B) is False
    assert urls.current == C
    assert urls.report_failure(C) is True  # every URL failed: back off
    assert urls.current == A


def test_success_sticks_to_the_working_url_and_ends_the_round() -> None:
    urls = OrchestratorUrls([A, B])
    urls.report_failure(A)
    urls.report_success(B)
    assert urls.current == B
    assert urls.report_failure(B) is False  # A's old failure no longer counts
    assert urls.current == A


def test_a_stale_failure_report_does_not_rotate_again() -> None:
    urls = OrchestratorUrls([A, B, C])
    urls.report_failure(A)  # two loops saw A fail; the second report must not skip B
    urls.report_failure(A)
    assert urls.current == B


def test_single_url_backs_off_at_once() -> None:
    urls = OrchestratorUrls(A)
    assert urls.report_failure(A) is True
    assert urls.current == A


def test_websocket_url_follows_the_current_url() -> None:
    urls = OrchestratorUrls([A, "https://c/prefix"])
    assert urls.websocket_url("gpu worker/1") == "ws://a:8080/_worker/ws/gpu%20worker%2F1"
    urls.report_failure(A)
    assert urls.websocket_url("w") == "wss://c/prefix/_worker/ws/w"
