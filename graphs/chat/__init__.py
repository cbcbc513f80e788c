"""The ``chat`` workflow: natural-language questions answered by specialists from the real data."""
