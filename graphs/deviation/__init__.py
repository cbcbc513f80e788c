"""The ``deviation`` workflow: score, assess, supervisor, specialists, guardrails, approval, execute, record."""
