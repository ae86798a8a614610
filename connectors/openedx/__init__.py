"""Open edX tracking logs -> xAPI statements."""
