"""Packaged knowledge content (data only): the policy file, the policy document templates and the
labelled retrieval evaluation set. Every number in the templates is a ``{{ policy.path }}`` placeholder.
"""
