"""Packaged offline embedding model (data only): a static model distilled from all-MiniLM-L6-v2.

Made by ``scripts/distill_embedder.py``; loaded by ``rag.embeddings.StaticEmbedder`` with numpy.
"""
