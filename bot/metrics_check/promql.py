"""What app.yaml can check of a PromQL query without a server: balanced brackets and quotes.

The server's own parser has the last word: a query it refuses is one sentence in /health and in
the daily post. This catches the typos (a bracket or quote left open) at `opsbot config check`.
"""
from __future__ import annotations

_PAIRS = {")": "(", "]": "[", "}": "{"}


def promql_problem(query: str) -> str | None:
    """None when the query's brackets and quotes balance and it has no control characters; else why not."""
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in query):
        return "the query has control characters"
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for index, ch in enumerate(query):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack[-1] != _PAIRS[ch]:
                return f"PromQL syntax error: unexpected '{ch}' at character {index + 1}"
            stack.pop()
    if quote:
        return "PromQL syntax error: a string is not closed"
    if stack:
        return f"PromQL syntax error: '{stack[-1]}' is not closed"
    if not query.strip():
        return "the query is empty"
    return None
