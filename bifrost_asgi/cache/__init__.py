"""The response cache (issue 14): direct and semantic lookups, and the vector stores behind them."""
