"""Delay-risk classifier: P(order is late) from the ten shipping features."""
