"""The data layer: every read and write of the relay's tables, and the one path async code takes to the database.

- ``store``: conversations, messages, carts and turn records, one small synchronous function each, including the
  one ownership rule (:func:`store.owned_conversation`) every door uses;
- ``claims``: the turn state in the database (claiming a conversation for a turn, its heartbeat, its end, reaping);
- ``db``: :func:`db.call`, which runs those functions from async code, batched onto Django's database thread and
  riding out a brief outage. Nothing outside this package calls ``sync_to_async`` on database work
  (``tests/chat/test_architecture.py`` checks it).

The models stay in ``chat/models.py``: Django finds an app's models in its ``models`` module, and the migrations and
the admin name them there. This package sits beside the flow: it imports the models, Django, the protocol's frame
types and the bottom helpers of ``chat.ops`` (process identity, per-loop objects, turn limits), never the turn
engine, the feed, presentation or the entry points.
"""
