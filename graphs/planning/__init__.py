"""The ``planning`` workflow: store replenishment and promotion plans with reflection and human approval."""
