"""The chat intent classifier: which of the retail questions the chat answers a text is.

A scikit-learn pipeline, TF-IDF word 1-2-grams plus character 1-4-grams into a linear SVM whose scores are
calibrated into probabilities (sigmoid, 3-fold; the probability is the confidence), trained on the labelled
examples of ``utterances.yaml``.
Before classification, entity values are replaced by placeholder words (:func:`normalise`: order ids become
``xorder``, sku numbers ``xsku``, store numbers ``xstore``, catalog product names ``xproduct`` ...), so the model
learns how a question is asked rather than which store or order it names.

``utterances.yaml`` holds the training examples. Its ``heldout: true`` blocks (about a quarter of each intent) were
the first held-out split; their errors were read while the classifier was built, so they train it too now and serve
only as a regression check (a classifier trained on the other blocks must still reach a floor on them).
``heldout.yaml`` is the held-out set: written afterwards by someone who had not seen the training examples or the
classifier, never used to train or tune it. :func:`default_classifier` trains on all of ``utterances.yaml``, and
:func:`evaluate` on ``heldout.yaml`` measures it::

    python -m ml.nlu.intents          # held-out accuracy, per-intent precision / recall, confusions
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from ml.errors import InputError
from ml.nlu.entities import check_text
from ml.synth_catalog import CATEGORIES, CITY_NAMES

__all__ = [
    "INTENTS",
    "IntentClassifier",
    "IntentGuess",
    "IntentReport",
    "IntentScore",
    "Utterance",
    "default_classifier",
    "evaluate",
    "is_follow_up",
    "load_heldout",
    "load_utterances",
    "normalise",
]

log = logging.getLogger(__name__)

INTENTS: tuple[str, ...] = (
    "inventory.stock", "inventory.reorder", "pricing.price", "pricing.recommend", "customer.profile",
    "customer.top", "customer.recommend", "fulfillment.order_risk", "fulfillment.late_orders", "fulfillment.kpis",
    "fulfillment.deviations", "sales.summary", "sales.compare", "sales.top_sellers", "sales.category_share",
    "planning.start", "planning.status", "knowledge.policy", "chat.greeting", "chat.out_of_scope",
    "chat.write_request",
)  # fmt: skip
"""Every intent the classifier knows."""

UTTERANCES_PATH = Path(__file__).with_name("utterances.yaml")
HELDOUT_PATH = Path(__file__).with_name("heldout.yaml")


@dataclass(frozen=True)
class Utterance:
    """One labelled example; ``heldout`` examples are for evaluation only."""

    text: str
    intent: str
    heldout: bool = False


@dataclass(frozen=True)
class IntentGuess:
    """The most likely intent, its probability, and every intent ranked by probability."""

    intent: str
    confidence: float
    ranked: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class IntentScore:
    """Precision and recall of one intent over an evaluation set (``support``: its true examples)."""

    intent: str
    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class IntentReport:
    """How a classifier does on a labelled set: accuracy, per-intent scores, and each confusion with its count."""

    accuracy: float
    n: int
    per_intent: tuple[IntentScore, ...]
    confusions: tuple[tuple[str, str, int], ...]
    """(true intent, predicted intent, count), most frequent first."""
    errors: tuple[tuple[str, str, str], ...] = ()
    """(text, true intent, predicted intent) of every miss."""

    def format(self) -> str:
        """A plain-text report."""
        lines = [f"accuracy {self.accuracy:.3f} on {self.n} utterances", "intent  precision  recall  support"]
        lines += [f"{s.intent:24} {s.precision:6.2f} {s.recall:7.2f} {s.support:6d}" for s in self.per_intent]
        lines += ["confusions (true -> predicted: count)"]
        lines += [f"  {t} -> {p}: {c}" for t, p, c in self.confusions]
        lines += ["misses"] + [f"  {text!r}: {t} -> {p}" for text, t, p in self.errors]
        return "\n".join(lines)


# --- normalisation ---------------------------------------------------------------------------------------------


def _gazetteer() -> re.Pattern[str]:
    """Product nouns and city names of the synthetic catalog, longest first."""
    names = {noun.lower() for profile in CATEGORIES for noun in profile.nouns} | {c.lower() for c in CITY_NAMES}
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})s?\b")


_CITY_NAMES = frozenset(c.lower() for c in CITY_NAMES)
_NAMES = _gazetteer()
_PLACEHOLDERS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", " xplan "),
        (r"\b\d{4}-\d{1,2}-\d{1,2}\b", " xdate "),
        (r"\bord[-_ ]?\d+\b", " xorder "),
        (r"\b[A-Z]{1,5}-\d{3,}(?:-\d+)*\b", " xorder "),
        (r"\b(orders?\s*(?:id|number|no\.?|#)?\s*[:#]?\s*)\d+\b", r"\1 xorder "),
        (r"\bC\d{3,9}\b", " xcustomer "),
        (r"\b((?:customers?|client|shopper|member)\s*(?:id|number|no\.?|#)?\s*[:#]?\s*)\d+\b", r"\1 xcustomer "),
        (r"\b((?:stores?|shops?|branch(?:es)?)\s*(?:#|no\.?|number)?\s*)\d+\b", r"\1 xstore "),
        (r"(?<![\w#])#\s?\d+\b", " xstore "),
        (r"\b((?:skus?|items?|products?|articles?)\s*(?:#|no\.?|number)?\s*[:#]?\s*)\d+\b", r"\1 xsku "),
        (r"\b(?:19|20)\d\d\b", " xyear "),
        (r"\b\d{4,9}\b", " xsku "),
        (r"\b\d+(?:\.\d+)?\s*(?:%|percent\b)", " xpercent "),
        (r"\$\s*\d+(?:\.\d+)?|\b\d+(?:\.\d+)?\s*(?:dollars|usd)\b", " xmoney "),
        (r"\b\d+(?:\.\d+)?\b", " xnum "),
    )
)


_CONCEPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("kstock", r"\b(?:stock|inventory|on hand|in stock|left|available|availability|shelf|shelves|units? of)\b"),
        (
            "kreorder",
            r"\b(?:re-?order\w*|re-?stock\w*|replenish\w*|top(?:ping)? up|order more|buy more|purchase orders?|"
            r"suppliers?|run(?:ning)? (?:out|low)|order quantit\w+|bring in)\b",
        ),
        (
            "kprice",
            r"\b(?:price[sd]?|pricing|cost|costs|charge|pay|sell(?:ing)? for|retail(?:s|ing)? (?:at|for)|"
            r"priced|margin)\b",
        ),
        (
            "kpromo",
            r"\b(?:discount\w*|promo\w*|markdown\w*|clearance|deals?|sale price|price cut|cut the price|"
            r"lower (?:the )?prices?|raise (?:the )?prices?|xpercent off|off the price)\b",
        ),
        (
            "kadvice",
            r"\b(?:should|recommend\w*|recomend\w*|suggest\w*|advi[sc]e\w*|optimal|worth|best way|ideas?|"
            r"strategy)\b",
        ),
        ("kcustomer", r"\b(?:customers?|clients?|shoppers?|members?|buyers?|xcustomer|custmer|customrs)\b"),
        (
            "kloyal",
            r"\b(?:loyal\w*|vip|top|best|biggest|most valuable|highest value|frequent\w*|spend\w*|spent|rank\w*|"
            r"leaderboard|lifetime value)\b",
        ),
        (
            "klate",
            r"\b(?:late|lateness|delay\w*|behind|overdue|tardy|slip\w*|miss(?:es|ing)?|risk\w*|at-risk|"
            r"on time|on track|in time)\b",
        ),
        ("korder", r"\b(?:orders?|shipments?|parcels?|deliver\w*|packages?|xorder)\b"),
        (
            "kkpi",
            r"\b(?:rates?|percent\w*|fraction|share|kpis?|metrics?|performance|scorecard|dashboard|"
            r"service level|otd|on-time|punctual\w*|reliab\w*|how often)\b",
        ),
        (
            "kdeviation",
            r"\b(?:deviations?|devations?|exceptions?|alerts?|escalat\w*|flag\w*|issues?|problems?|queue|"
            r"backlog|unresolved|open)\b",
        ),
        (
            "ksales",
            r"\b(?:sell|sells|sold|sales?|revenue|turnover|takings|tills?|units (?:moved|sold)|selling|"
            r"sellers?|bestsellers?|business)\b",
        ),
        (
            "kcompare",
            r"\b(?:compar\w*|compre|vs\.?|versus|against|than|growth|grow\w*|shrink\w*|up or down|"
            r"differen\w*|change|trend\w*|better or worse|over the|the week before|the month before|previous|prior)\b",
        ),
        (
            "kcategory",
            r"\b(?:categor\w*|categry|departments?|aisles?|product famil\w*|mix|split|breakdown|"
            r"break down|by category|portion|proportions?|distributed)\b",
        ),
        ("kplan", r"\b(?:plans?|planning|planner|xplan)\b"),
        (
            "kstart",
            r"\b(?:start\w*|strat|create|kick(?:ed)? off|launch|begin|generate|draft|prepare|new|fresh|"
            r"make a|run the|set up)\b",
        ),
        (
            "kstatus",
            r"\b(?:status|done|finish\w*|approved|approval|pending|progress|how far|stuck|still running|"
            r"signed off|results?|happened)\b",
        ),
        (
            "kpolicy",
            r"\b(?:polic\w*|polcy|rules?|slas?|guidelines?|handbook|procedures?|allowed|compensation|"
            r"vouchers?|goodwill|templates?|wording|what do we do|how do we handle|process|compensat\w*|"
            r"what should (?:i|we) (?:tell|say|do)|when should)\b",
        ),
        (
            "kgreet",
            r"^(?:hello|helo|hi|hey|yo|howdy|greetings|good (?:morning|afternoon|evening)|morning|thanks?|"
            r"thank you|thx|cheers|bye|see you)\b",
        ),
        ("kbot", r"^help\W*$|\bwho are you\b|\bwhat can you\b|\bwhat (?:kind|sort) of questions\b|\bcan i ask\b"),
        (
            "kshare",
            r"\b(?:share|percentage|percent|fraction|proportion|portion) of (?:\w+ ){0,3}(?:sales|revenue|units|"
            r"turnover)\b|\bhow much of (?:our|the) (?:sales|revenue|turnover)\b",
        ),
        (
            "kwrite",
            r"^(?:please )?(?:set|change|update|cancel|delete|remove|approve|refund|apply|issue|send|mark|close|"
            r"reassign|wipe|credit|bump|escalate|place|give (?!me\b|us\b)|go ahead|sign off|override|ignore|pretend)\b",
        ),
        (
            "kinject",
            r"\b(?:ignore (?:your|all|previous|the)|pretend|override|admin mode|developer mode|jailbreak|"
            r"restrictions|system prompt|instructions)\b",
        ),
    )
)
"""Concepts a question can be about, by the words that usually express them; each adds a marker word."""


def normalise(text: str) -> str:
    """``text`` lower-cased, entity values replaced by placeholder words, concept markers appended.

    See the module docstring; the concept markers (``kstock``, ``klate``...) let a phrasing the examples do not
    contain still share features with the examples of the same concept.
    """
    for pattern, replacement in _PLACEHOLDERS:
        text = pattern.sub(replacement, text)
    text = text.lower()
    text = _NAMES.sub(lambda m: " xcity " if m.group(0) in _CITY_NAMES else " xproduct ", text)
    text = re.sub(r"\s+", " ", text).strip()
    markers = [name for name, pattern in _CONCEPTS if pattern.search(text)]
    return f"{text} {' '.join(markers)}".strip()


_FOLLOW_UP = re.compile(
    r"^\s*(?:and|what about|how about|same for|same but|now for|ok(?:ay)?,? and|also|then|and what about)\b",
    re.IGNORECASE,
)


def is_follow_up(text: str) -> bool:
    """True for a short follow-up that only changes an entity ("and at store 2?", "what about last week?").

    Such a text keeps the conversation's intent; the caller reads its entities and merges them into the focus.
    """
    text = check_text(text)
    return bool(_FOLLOW_UP.match(text)) and len(text.split()) <= 8


# --- the classifier ----------------------------------------------------------------------------------------------


def _pipeline(c: float) -> Pipeline:
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
        ]
    )
    model = CalibratedClassifierCV(LinearSVC(C=c), cv=3, method="sigmoid")
    return Pipeline([("features", features), ("model", model)])


class _Scorer:
    """A fitted pipeline's ``predict_proba`` as a few array operations, for one text at a time.

    scikit-learn validates its input at every step (about 5 ms a call, most of a chat question's classification);
    this does the same arithmetic without the checks: each vectoriser's n-grams (its own analyser) counted against
    its vocabulary, sublinear tf times idf, normalised to unit length; every fold's SVM scores as the rows of one
    weight matrix summed over those features; each class's sigmoid calibration; each fold's probabilities
    normalised (uniform when they are all zero) and averaged. The tests hold it to ``predict_proba``.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        vectorisers = [step for _, step in pipeline.named_steps["features"].transformer_list]
        if not all(v.sublinear_tf and v.use_idf and v.norm == "l2" and not v.binary for v in vectorisers):
            raise ValueError("the scorer computes sublinear, idf-weighted, l2-normalised tf only")
        self.analysers = [v.build_analyzer() for v in vectorisers]
        starts = np.cumsum([0] + [len(v.vocabulary_) for v in vectorisers])  # each vocabulary's first column
        self.vocabularies = [{term: int(i) + int(start) for term, i in v.vocabulary_.items()}
                             for v, start in zip(vectorisers, starts, strict=False)]  # fmt: skip
        self.idf = np.concatenate([v.idf_ for v in vectorisers])
        model: CalibratedClassifierCV = pipeline.named_steps["model"]
        self.n_classes = len(model.classes_)
        position = {c: i for i, c in enumerate(model.classes_)}
        coefs: list[np.ndarray] = []
        intercepts: list[np.ndarray] = []
        slopes: list[float] = []
        offsets: list[float] = []
        self.folds: list[tuple[slice, np.ndarray]] = []  # each fold's score columns and the classes they score
        for fold in model.calibrated_classifiers_:
            svm = fold.estimator
            first = int(sum(len(c) for c in intercepts))
            coefs.append(svm.coef_)
            intercepts.append(np.atleast_1d(svm.intercept_))
            slopes.extend(c.a_ for c in fold.calibrators)
            offsets.extend(c.b_ for c in fold.calibrators)
            columns = np.array([position[c] for c in svm.classes_])
            self.folds.append((slice(first, first + len(columns)), columns))
        self.weights = np.vstack(coefs).T.copy()  # features x (folds x classes)
        self.intercept = np.concatenate(intercepts)
        self.slope, self.offset = np.array(slopes), np.array(offsets)

    def _scores(self, text: str) -> np.ndarray:
        score = self.intercept.copy()
        for analyse, vocabulary in zip(self.analysers, self.vocabularies, strict=True):
            counts = Counter(i for i in map(vocabulary.get, analyse(text)) if i is not None)
            if not counts:
                continue
            index = np.fromiter(counts, dtype=np.intp, count=len(counts))
            values = (np.log(np.fromiter(counts.values(), dtype=float, count=len(counts))) + 1) * self.idf[index]
            score += (values / np.sqrt(np.dot(values, values))) @ self.weights[index]
        return score

    def __call__(self, texts: list[str]) -> np.ndarray:
        scores = np.array([self._scores(t) for t in texts]).reshape(len(texts), -1)
        calibrated = expit(-(self.slope * scores + self.offset))
        mean = np.zeros((len(texts), self.n_classes))
        for columns, classes in self.folds:
            proba = np.zeros_like(mean)
            proba[:, classes] = calibrated[:, columns]
            total = proba.sum(axis=1, keepdims=True)
            mean += np.divide(proba, total, out=np.full_like(proba, 1 / self.n_classes), where=total != 0)
        return mean / len(self.folds)


class IntentClassifier:
    """TF-IDF (words + characters) and a linear SVM with sigmoid-calibrated probabilities, over normalised texts.

    ``c`` is the SVM's inverse regularisation strength, chosen by 5-fold cross-validation on the training split
    only (the held-out split never informs a choice).
    """

    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self._pipeline: Pipeline | None = None
        self._scorer: _Scorer | None = None

    def train(self, examples: Iterable[Utterance]) -> IntentClassifier:
        """Fit on ``examples`` (all of them: pass the training split) and return self."""
        rows = list(examples)
        if not rows:
            raise InputError("no training examples", field="examples")
        unknown = sorted({u.intent for u in rows} - set(INTENTS))
        if unknown:
            raise InputError(f"unknown intent(s) {', '.join(unknown)}", field="intent", allowed=INTENTS)
        if len({u.intent for u in rows}) < 2:
            raise InputError("need examples of at least two intents", field="examples")
        pipeline = _pipeline(self.c)
        pipeline.fit([normalise(u.text) for u in rows], [u.intent for u in rows])
        self._pipeline = pipeline
        # the compiled scorer covers the multi-class case (every intent set the chat uses); two intents keep sklearn
        self._scorer = _Scorer(pipeline) if len(pipeline.classes_) > 2 else None
        log.debug("intent classifier trained on %d examples", len(rows))
        return self

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents it was trained on."""
        return tuple(str(c) for c in self._fitted().classes_)

    def _fitted(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("IntentClassifier.train() must be called before predict()")
        return self._pipeline

    def predict(self, text: str) -> IntentGuess:
        """The intent of ``text``; :class:`InputError` naming ``text`` if it is empty or too long."""
        return self.predict_many([text])[0]

    def predict_many(self, texts: Sequence[str]) -> list[IntentGuess]:
        """:meth:`predict` for several texts at once."""
        pipeline = self._fitted()
        normalised = [normalise(check_text(t)) for t in texts]
        if not normalised:
            return []
        probabilities = self._scorer(normalised) if self._scorer else pipeline.predict_proba(normalised)
        classes = [str(c) for c in pipeline.classes_]
        guesses = []
        for row in probabilities:
            ranked = tuple(sorted(((c, float(p)) for c, p in zip(classes, row, strict=True)), key=lambda x: -x[1]))
            guesses.append(IntentGuess(ranked[0][0], ranked[0][1], ranked))
        return guesses


# --- data and evaluation ------------------------------------------------------------------------------------------


def _block_utterances(block: object, index: int) -> list[Utterance]:
    if not isinstance(block, dict) or not isinstance(block.get("texts"), list):
        raise InputError(f"block {index} must have an intent and a list of texts", field="utterances")
    intent, heldout = block.get("intent"), block.get("heldout", False)
    if intent not in INTENTS:
        raise InputError(f"block {index}: unknown intent {intent!r}", field="intent", allowed=INTENTS)
    if not isinstance(heldout, bool):
        raise InputError(f"block {index}: heldout must be true or false", field="heldout")
    return [Utterance(str(t).strip(), str(intent), heldout) for t in block["texts"] if str(t).strip()]


def load_utterances(path: Path | str | None = None) -> list[Utterance]:
    """The labelled examples of ``path`` (default: the packaged ``utterances.yaml``)."""
    source = Path(path) if path is not None else UTTERANCES_PATH
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read {source.name}: {exc}", field="path") from exc
    if not isinstance(data, dict) or not isinstance(data.get("utterances"), list):
        raise InputError("must hold a list under 'utterances'", field="utterances")
    return [u for i, block in enumerate(data["utterances"]) for u in _block_utterances(block, i)]


def load_heldout(path: Path | str | None = None) -> list[Utterance]:
    """The held-out examples of ``path`` (default: the packaged ``heldout.yaml``), marked ``heldout``."""
    return [Utterance(u.text, u.intent, True) for u in load_utterances(path or HELDOUT_PATH)]


@functools.cache
def default_classifier() -> IntentClassifier:
    """The classifier trained on every example of ``utterances.yaml``; one per process."""
    return IntentClassifier().train(load_utterances())


def _score(intent: str, pairs: list[tuple[str, str]]) -> IntentScore:
    hits = sum(1 for t, p in pairs if t == p == intent)
    predicted = sum(1 for _, p in pairs if p == intent)
    support = sum(1 for t, _ in pairs if t == intent)
    return IntentScore(intent, hits / predicted if predicted else 0.0, hits / support if support else 0.0, support)


def evaluate(classifier: IntentClassifier, utterances: Sequence[Utterance]) -> IntentReport:
    """Accuracy, per-intent precision / recall and confusions of ``classifier`` on ``utterances``."""
    if not utterances:
        raise InputError("no utterances to evaluate", field="utterances")
    guesses = classifier.predict_many([u.text for u in utterances])
    pairs = [(u.intent, g.intent) for u, g in zip(utterances, guesses, strict=True)]
    accuracy = sum(1 for t, p in pairs if t == p) / len(pairs)
    intents = sorted({t for t, _ in pairs})
    confusions = Counter((t, p) for t, p in pairs if t != p)
    errors = tuple(
        (u.text, u.intent, g.intent) for u, g in zip(utterances, guesses, strict=True) if u.intent != g.intent
    )
    return IntentReport(
        accuracy=accuracy,
        n=len(pairs),
        per_intent=tuple(_score(i, pairs) for i in intents),
        confusions=tuple((t, p, c) for (t, p), c in confusions.most_common()),
        errors=errors,
    )


def main() -> None:
    """Log the evaluation of the default classifier on the held-out set."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("%s", evaluate(default_classifier(), load_heldout()).format())


if __name__ == "__main__":
    main()
