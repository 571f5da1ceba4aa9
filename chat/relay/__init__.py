"""The relay: browser turns -> upstream sessions -> stored messages and htmx fragments.

Nothing here is tied to a browser socket's lifetime: a turn keeps running (and keeps being stored) after the tab
that started it closes, and every tab of the conversation sees it through the channel-layer group.
"""
