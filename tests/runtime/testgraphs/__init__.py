"""Small graphs the runtime tests serve through a temporary langgraph.json (one module per graph)."""
