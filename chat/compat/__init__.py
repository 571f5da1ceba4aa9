"""Every patch of a library's private parts, fenced in one place.

The relay reaches into libraries where their public API has no way to do what it needs (each module here says
why, and what it buys; docs/compat.md lists them). Private parts change without notice, so each patch is a
:class:`Fence`:

* it applies only to the library versions it was written and tested against (``versions``, the pins of
  requirements.txt). Under any other version the library's own behaviour is kept and one warning says so when the
  patch is first asked for (at process start: ``vizochok_site.asgi`` installs them, the settings pick the layer);
* ``VIZOCHOK_COMPAT_<NAME>=0`` turns it off (the library's own behaviour), e.g. to tell whether a fault is the
  patch's; anything else, or nothing, leaves it on;
* its own test (tests/chat/compat/) drives it and the library's own path on real sockets or real objects.

This package imports nothing from Django and nothing from ``chat`` outside it: the protocol layer
(``chat.vizochok``) uses :mod:`chat.compat.websockets` and must stay free of both (tests/chat/test_architecture.py).
"""
