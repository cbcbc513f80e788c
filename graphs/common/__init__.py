"""Machinery shared by the workflow graphs (approval requests; the supervisor/specialist registry to come)."""
