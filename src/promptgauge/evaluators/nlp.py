"""TEMPORARY: replaced by the nlp-metrics branch."""
import re, string
from collections import Counter


def _normalize(text):
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


class F1ScoreEvaluator:
    def __init__(self, *, threshold=0.5):
        self.threshold = threshold

    def __call__(self, *, response, ground_truth):
        p = _normalize(response).split(); g = _normalize(ground_truth).split()
        same = sum((Counter(p) & Counter(g)).values())
        f1 = 0.0 if same == 0 else 2 * (same / len(p)) * (same / len(g)) / ((same / len(p)) + (same / len(g)))
        return {"f1_score": f1, "f1_result": "pass" if f1 >= self.threshold else "fail", "f1_threshold": self.threshold}


EVALUATORS = {"f1": F1ScoreEvaluator}
