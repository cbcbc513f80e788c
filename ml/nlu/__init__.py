"""Offline language understanding for the chat workflow: intents, entities and periods, with no LLM.

``default_classifier().predict(text)`` names the intent (:mod:`ml.nlu.intents`); ``extract(text, catalog)``
finds the stores, products, ids, filters and periods it is about, resolved against the catalog
(:mod:`ml.nlu.entities`, :mod:`ml.nlu.periods`).
"""

from ml.nlu.entities import Ambiguous, Catalog, Entities, ProductRef, StoreRef, Unknown, extract
from ml.nlu.intents import (
    INTENTS,
    IntentClassifier,
    IntentGuess,
    IntentReport,
    IntentScore,
    Utterance,
    default_classifier,
    evaluate,
    is_follow_up,
    load_heldout,
    load_utterances,
)
from ml.nlu.periods import Period, parse_periods

__all__ = [
    "INTENTS",
    "Ambiguous",
    "Catalog",
    "Entities",
    "IntentClassifier",
    "IntentGuess",
    "IntentReport",
    "IntentScore",
    "Period",
    "ProductRef",
    "StoreRef",
    "Unknown",
    "Utterance",
    "default_classifier",
    "evaluate",
    "extract",
    "is_follow_up",
    "load_heldout",
    "load_utterances",
    "parse_periods",
]
