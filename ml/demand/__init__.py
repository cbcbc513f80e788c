"""Demand forecaster: one global LightGBM model over (store, item) daily sales, P50 and P90."""
