"""An example custom evaluator: is the answer short?

Any callable defined in a file in this folder can be named in a suite's
``evaluators:`` by its name. It receives the mapped columns as keyword
arguments and returns a dict (the azure-ai-evaluation contract).
"""


def brevity(*, response: str, max_words: int = 8) -> dict:
    words = len(str(response).split())
    return {"words": words, "brevity_result": "pass" if words <= max_words else "fail"}
