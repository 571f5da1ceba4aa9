"""The turn engine: who runs a conversation's turn, its upstream socket and slot, heartbeat, end and reaping."""
