"""Entry points: page views, the browser socket's consumer, routing, embedding (tokens, options, origins), health and
readiness, and the server's shutdown (``lifecycle``)."""
