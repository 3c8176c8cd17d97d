"""Evaluation: the paper's protocols over a split, and the reports.

metrics (category top-k, attribute top-k recall, retrieval top-k, landmark
NE), search (the accelerator's chunked top-k retrieval search), loop (a
predict function over a split → metrics), report (JSON, Markdown beside the
paper's numbers, PNG plots). It may import data/, models/, `sharding`,
`schema` and `errors`; never training/ or inference/: it takes a predict
function, not a trainer.
"""
