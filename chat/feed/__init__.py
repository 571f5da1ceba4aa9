"""The live feed of a conversation: coalescing, ordered delivery to tabs here and in other processes."""
