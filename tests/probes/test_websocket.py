"""WebSocket prober and engine against the local load balancer's chat endpoints."""
from __future__ import annotations

import asyncio

from runbook_lib import redact
from runbook_lib.probes import websocket
from runbook_lib.probes.base import PHASES, Attempt, NetContext, Reason
from runbook_lib.redact import MASK

CHAT = {"type": "chat", "id": "r1", "text": "hello"}


def routed(lb, certs) -> NetContext:
    return NetContext(connect_to=lb.route(lb.api), ca_bundle=certs.ca_bundle)


def test_chat_runs_until_agent_completed(lb, certs) -> None:
    result = asyncio.run(websocket.probe(
        f"wss://{lb.api}/ws", routed(lb, certs), 3, send=[CHAT], until_type="agent_completed"))
    assert result.ok, result.detail
    assert list(result.phases) == list(PHASES["websocket"])
    assert result.phases["resolve"] == 0.0
    for phase in ("connect", "tls", "upgrade", "first_message"):
        assert result.phases[phase] > 0, phase
    assert result.info["status"] == 101
    assert [m["data"]["type"] for m in result.info["messages"]] == list(lb.agent_events)
    assert all(m["data"]["token"] == MASK for m in result.info["messages"])  # redacted
    times = [m["t"] for m in result.info["messages"]]
    assert times == sorted(times) and times[0] > 0
    assert result.info["closed_early"] is False and "close" not in result.info
    assert lb.sni_seen[-1] == lb.api


def test_expect_messages_over_plain_ws(lb) -> None:
    result = asyncio.run(websocket.probe(
        f"ws://127.0.0.1:{lb.plain_port}/ws", NetContext(), 3, send=[{"type": "ping"}, {"type": "ping"}],
        expect_messages=2))
    assert result.ok, result.detail
    assert result.phases["tls"] == 0.0
    assert [m["data"]["type"] for m in result.info["messages"]] == ["echo", "echo"]


def test_upgrade_only(lb, certs) -> None:
    result = asyncio.run(websocket.probe(f"wss://{lb.api}/ws", routed(lb, certs), 3))
    assert result.ok and result.info["messages"] == []
    assert result.phases["upgrade"] > 0 and result.phases["first_message"] == 0.0


def test_refused_upgrade(lb, certs) -> None:
    net = routed(lb, certs)
    unavailable = asyncio.run(websocket.probe(f"wss://{lb.api}/ws-unavailable", net, 3, until_type="x"))
    assert unavailable.reason is Reason.http_status
    assert unavailable.detail == "upgrade refused: HTTP 503 (expected 101)"
    assert unavailable.info["status"] == 503 and "starting up" in unavailable.info["body_snippet"]
    unauthorized = asyncio.run(websocket.probe(
        f"wss://{lb.api}/ws", net, 3, headers={"Authorization": "Bearer wrong-token"}, until_type="x"))
    assert unauthorized.reason is Reason.http_status and unauthorized.info["status"] == 401


def test_connection_cut_before_the_awaited_message(lb, certs) -> None:
    result = asyncio.run(websocket.probe(
        f"wss://{lb.api}/ws-cut", routed(lb, certs), 3, until_type="agent_completed"))
    assert not result.ok
    assert result.reason is Reason.reset
    assert "after" in result.detail and "2 message(s)" in result.detail and "cut" in result.detail
    assert result.info["closed_early"] is True and "close" not in result.info
    assert len(result.info["messages"]) == 2


def test_server_close_frame_is_reported(lb, certs) -> None:
    result = asyncio.run(websocket.probe(
        f"wss://{lb.api}/ws-close", routed(lb, certs), 3, until_type="agent_completed"))
    assert result.reason is Reason.reset
    assert result.info["close"] == {"code": 1001, "reason": "backend timeout"}
    assert "code 1001" in result.detail


def test_silence_times_out_in_first_message(lb, certs) -> None:
    result = asyncio.run(websocket.probe(
        f"wss://{lb.api}/ws-silent", routed(lb, certs), 0.3, send=[CHAT], until_type="agent_completed"))
    assert result.reason is Reason.timeout
    assert "agent_completed" in result.detail
    assert result.phases["upgrade"] > 0 and result.phases["first_message"] == 0.0


def test_certificate_failure_captures_the_certificate(lb, certs) -> None:
    net = NetContext(connect_to=lb.route(lb.expired), ca_bundle=certs.ca_bundle)
    result = asyncio.run(websocket.probe(f"wss://{lb.expired}/ws", net, 3))
    assert result.reason is Reason.expired
    assert result.info["cert"]["verified"] is False


def test_refused_timeout_and_reset(closed_port: int, blackhole: int, resetter: int) -> None:
    net = NetContext()
    refused = asyncio.run(websocket.probe(f"ws://127.0.0.1:{closed_port}/ws", net, 2))
    assert refused.reason is Reason.refused
    silent = asyncio.run(websocket.probe(f"ws://127.0.0.1:{blackhole}/ws", net, 0.3))
    assert silent.reason is Reason.timeout and "no answer during upgrade" in silent.detail
    reset = asyncio.run(websocket.probe(f"ws://127.0.0.1:{resetter}/ws", net, 2))
    assert reset.reason is Reason.reset, reset.detail


def test_session_engine_for_the_golden_path(lb, certs) -> None:
    net = routed(lb, certs)

    async def chat() -> list[str]:
        run = Attempt("websocket", f"wss://{lb.api}/ws", net)
        session = await websocket.WebSocketSession.open(f"wss://{lb.api}/ws", net, run=run)
        try:
            await session.send_json(CHAT)
            types = []
            while (message := await session.receive()) is not None:
                types.append(message.data["type"])
                if message.data["type"] == "agent_completed":
                    break
            return types
        finally:
            await session.close()
            run.close_all()

    assert asyncio.run(chat()) == list(lb.agent_events)


def test_a_registered_token_in_the_url_never_reaches_the_result(lb, certs) -> None:
    token = "tok-" + "7f3a9c1e5b"
    redact.register(token)
    result = asyncio.run(websocket.probe(f"wss://{lb.api}/ws-unavailable?token={token}", routed(lb, certs), 3))
    assert result.reason is Reason.http_status
    assert token not in result.model_dump_json()
