from promptflow.core import tool


@tool
def shout(text: str) -> str:
    return text.upper()
