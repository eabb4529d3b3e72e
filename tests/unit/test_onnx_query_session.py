"""Queries are embedded by their own ONNX session (threads that sleep when idle, issue 19), with the same
numbers as the document session."""

from __future__ import annotations

import numpy as np


def test_query_session_is_separate_and_gives_the_document_vectors(embedder):
    assert embedder.query_session is not embedder.session
    for text in ("Does vitamin D lower the risk of fractures?", "cells", "ALDH1 expression in breast cancer"):
        q = embedder.embed_query(text)
        d = embedder.embed_documents([text])[0]
        np.testing.assert_allclose(q, d, atol=1e-6)
        assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-5
