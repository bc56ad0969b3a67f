"""Provider families. Each module implements the small `Provider` protocol in `_base`."""
