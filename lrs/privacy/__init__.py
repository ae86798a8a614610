"""Personal data: sealing per identity, pseudonyms and erasure (docs/privacy.md)."""
