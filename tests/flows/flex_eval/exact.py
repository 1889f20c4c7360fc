"""A flex evaluation flow: a class whose __call__ scores a line and whose __aggregate__ sums them up."""


class ExactMatch:
    def __init__(self, ignore_case: bool = True):
        self.ignore_case = ignore_case

    def __call__(self, response: str, expected: str) -> dict:
        a, b = (response.lower(), expected.lower()) if self.ignore_case else (response, expected)
        return {"match": 1.0 if a.strip() == b.strip() else 0.0, "verdict": "pass" if a.strip() == b.strip() else "fail"}

    def __aggregate__(self, line_results: list) -> dict:
        n = len(line_results)
        return {"match_rate": sum(r["match"] for r in line_results) / n if n else 0.0, "lines": n}
