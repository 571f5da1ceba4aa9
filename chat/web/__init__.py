"""Entry points: page views, the browser socket's consumer, routing, embedding (tokens, options, origins)."""
