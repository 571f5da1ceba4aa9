"""Operations, below the flow: process identity, per-loop objects, turn time limits, metrics, logs, socket caps and
rate limits, send buffers, security headers, static files.

It imports nothing of the data layer, the engine, the feed, presentation or the entry points
(``tests/chat/test_architecture.py``), so any of them may use it. What needs those lives with them: readiness and
shutdown are entry points (``chat.web.health``, ``chat.web.lifecycle``).
"""
