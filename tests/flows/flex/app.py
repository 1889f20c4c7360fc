class Echo:
    def __init__(self, prefix: str = ">"):
        self.prefix = prefix
    def __call__(self, question: str) -> dict:
        return {"answer": f"{self.prefix} {question}", "length": len(question)}
