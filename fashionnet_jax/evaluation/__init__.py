"""Evaluation: the paper's protocols over a split, and the reports.

It takes a predict function, not a trainer: it imports data/, models/ and
`schema`; never training/ or inference/.

Modules: metrics (category top-k, attribute top-k recall, retrieval top-k,
landmark NE), search (the accelerator's chunked exact top-k search), loop (a
predict function over a split → metrics), report (JSON, Markdown beside the
paper's numbers, PNG plots).
"""
