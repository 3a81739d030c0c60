"""A FastAPI app with websocket limits, served by uvicorn in test_websocket_servers.py.

``/ws/handshake`` accepts and closes at once; its handshakes are limited to
3 a minute per client. ``/ws/chat`` echoes until the client closes; at most
2 such connections are open per client. ``/ws/login`` refuses a handshake without
``?token=secret`` (closed before accept: the server answers 403); two refusals a
minute per client are allowed, then every handshake there gets the 429.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bridge.ratelimit import ConcurrencyLimit, RateLimit, Rule

app = FastAPI()


@app.websocket("/ws/handshake")
async def handshake(websocket: WebSocket) -> None:
    await websocket.accept()
    decision = websocket.scope["bridge.ratelimit"]
    await websocket.send_text(f"{decision.remaining} left")
    await websocket.close()


@app.websocket("/ws/chat")
async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/login")
async def login(websocket: WebSocket) -> None:
    if websocket.query_params.get("token") != "secret":
        await websocket.close(code=1008)  # before accept: the server answers 403
        return
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


app.add_middleware(
    RateLimit,
    limit=None,
    rules=[
        Rule("3/minute", path="=/ws/handshake"),
        Rule("2/minute", path="=/ws/login", count_when=(403,)),
    ],
    websocket=True,
)
app.add_middleware(ConcurrencyLimit, limit=2, exempt="/ws/handshake", websocket=True)
