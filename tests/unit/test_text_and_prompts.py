import pytest

from lectern.domain.prompts import load_template, parse_template
from lectern.domain.text import query_terms, snippet


def test_query_terms_drop_stopwords_but_never_everything():
    assert query_terms("What is the role of TNF-alpha in sepsis?") == ["role", "tnf", "alpha", "sepsis"]
    assert query_terms("What is it?") == ["what", "is", "it"]


def test_snippet_cuts_on_a_word():
    s = snippet("word " * 500, limit=50)
    assert s.endswith("…") and len(s) <= 52


def test_template_renders_braces_verbatim():
    t = load_template("answer-v1")
    msgs = t.render(context="[1] (a.md, page 1)\nset = {x | x > 0}", question="What is {x}?")
    assert msgs[0].role == "system" and "I don't know based on the provided documents." in msgs[0].content
    assert "{x | x > 0}" in msgs[1].content and "What is {x}?" in msgs[1].content
    assert t.version == "answer-v1"


@pytest.mark.parametrize("text", ["[system]\nonly system", "[system]\ns\n[user]\nno placeholders"])
def test_bad_templates_are_rejected(text):
    with pytest.raises(ValueError):
        parse_template("bad", text)


def test_unknown_or_unsafe_versions_are_rejected():
    for v in ("nope", "../etc/passwd"):
        with pytest.raises(ValueError):
            load_template(v)
