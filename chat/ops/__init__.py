"""Operations: health and readiness, metrics, logs, socket caps and rate limits, shutdown, security headers."""
