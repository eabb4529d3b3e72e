"""A FAKE OpenSearch for tests. It is not OpenSearch and must not be mistaken for it.

A small `ThreadingHTTPServer` on 127.0.0.1 that speaks the subset of the REST API Lectern's OpenSearch adapter
uses: HEAD/PUT/GET index (+ `_mapping`), `PUT/GET _search/pipeline/{id}`, `_bulk` (NDJSON index/delete),
`_delete_by_query`, `_count`, `_search`, `_msearch`, `_refresh`. It is written from OpenSearch's docs,
independently of `lectern.domain.fusion` (which it must never import), so that a test comparing the two is a
real comparison:

  * BM25 as Lucene's BM25Similarity (Lucene >= 8, no (k1 + 1) factor in the numerator), k1 = 1.2, b = 0.75,
    idf = ln(1 + (N - n + 0.5) / (n + 0.5)), N = documents with the field, n = documents with the term, exact
    field lengths (Lucene stores them lossily, so real scores differ in the last digits). The analyzer is a
    lower-case `\\w+` tokenizer; `english` also drops Lucene's English stop words but does NOT stem (real
    OpenSearch applies Porter stemming: "policies" matches "policy" there and not here).
  * exact k-NN for `cosinesimil`: score = (2 - d) / 2 with d = 1 - cos
    (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/), `filter` applied before
    the search (efficient filtering), top `k`.
  * `hybrid` queries with a search pipeline holding a `normalization-processor` (min_max + arithmetic_mean
    with weights) or a `score-ranker-processor` (rrf), per
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/ and
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/score-ranker-processor/ ; the min_max
    edge cases (lowest score -> 0.001, all equal -> 1.0) follow the neural-search plugin's
    MinMaxScoreNormalizationTechnique.
  * one shard, no replicas, immediately consistent (a write is searchable at once; `refresh` is accepted).

Request shapes it does not understand are answered 400 `parsing_exception`, so a drift in what the adapter
sends fails a test instead of passing silently. Tests can make chosen bulk items fail (`fail_chunk_ids`:
status 429 -> es_rejected_execution_exception, 400 -> mapper_parsing_exception) and can run it in
`serverless` mode, which rejects what OpenSearch Serverless vector collections reject (client `_id` on
index, `_delete_by_query`, `_refresh`, the `refresh` parameter).
Every request is recorded in `requests` for golden-body tests.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

K1, B = 1.2, 0.75
MIN_SCORE, SINGLE_RESULT_SCORE = 0.001, 1.0
_STOP = "a an and are as at be but by for if in into is it no not of on or such that the their then there"
ENGLISH_STOP_WORDS = frozenset(
    [*_STOP.split(" "), "these", "they", "this", "to", "was", "will", "with"]
)  # Lucene's English set
_TOKEN = re.compile(r"\w+", re.UNICODE)


class BadRequest(Exception):
    def __init__(self, reason: str, kind: str = "parsing_exception", status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.kind, self.status = reason, kind, status


def _keys(obj: Any, allowed: set[str], where: str, required: Collection[str] = ()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"[{where}] expected an object")
    unknown = set(obj) - allowed
    if unknown:
        raise BadRequest(f"[{where}] unknown field(s) {sorted(unknown)}")
    missing = set(required) - set(obj)
    if missing:
        raise BadRequest(f"[{where}] missing field(s) {sorted(missing)}")
    return obj


def _single(obj: Any, where: str) -> tuple[str, Any]:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise BadRequest(f"[{where}] expected exactly one key")
    return next(iter(obj.items()))


@dataclass
class Index:
    mapping: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def props(self) -> dict[str, Any]:
        return self.mapping["properties"]

    def analyzer(self, fname: str) -> str:
        return self.props[fname].get("analyzer", "standard")


def analyze(text: str, analyzer: str) -> list[str]:
    tokens = [t for t in _TOKEN.findall(text.lower()) if t.strip("_")]
    if analyzer == "english":
        tokens = [t for t in tokens if t not in ENGLISH_STOP_WORDS]
    return tokens


class FakeOpenSearch:
    """State and query evaluation; `FakeOpenSearchServer` puts HTTP in front of it."""

    def __init__(self, *, serverless: bool = False) -> None:
        self.serverless = serverless
        self.indices: dict[str, Index] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_chunk_ids: dict[str, int] = {}
        self.lock = threading.RLock()
        self._next_id = 0

    # -- mapping and pipelines -------------------------------------------------------------------------------
    def create_index(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name in self.indices:
            raise BadRequest(f"index [{name}] already exists", "resource_already_exists_exception")
        _keys(body, {"settings", "mappings"}, "create index")
        settings = body.get("settings", {})
        if _keys(settings, {"index"}, "settings").get("index") != {"knn": True}:
            raise BadRequest("settings.index must be exactly {knn: true} here")
        mapping = _keys(body.get("mappings", {}), {"dynamic", "properties"}, "mappings", {"properties"})
        if mapping.get("dynamic", "strict") != "strict":
            raise BadRequest("only dynamic: strict is understood")
        for fname, spec in mapping["properties"].items():
            self._check_field(fname, spec, mapping["properties"])
        self.indices[name] = Index(mapping)
        return {"acknowledged": True, "shards_acknowledged": True, "index": name}

    @staticmethod
    def _check_field(fname: str, spec: dict[str, Any], props: dict[str, Any]) -> None:
        kind = spec.get("type")
        if kind == "keyword":
            _keys(spec, {"type", "index", "doc_values"}, fname)
            if spec.get("index") is False and spec.get("doc_values", True) is not False:
                raise BadRequest(f"[{fname}] a stored-only keyword here sets index and doc_values false")
        elif kind == "integer":
            _keys(spec, {"type"}, fname)
        elif kind == "text":
            _keys(spec, {"type", "analyzer", "copy_to"}, fname)
            if spec.get("analyzer", "standard") not in ("standard", "english"):
                raise BadRequest(f"[{fname}] analyzer not understood")
            if "copy_to" in spec and props.get(spec["copy_to"], {}).get("type") != "text":
                raise BadRequest(f"[{fname}] copy_to must name a text field")
        elif kind == "knn_vector":
            _keys(spec, {"type", "dimension", "method"}, fname, {"dimension", "method"})
            method = _keys(spec["method"], {"name", "space_type", "engine", "parameters"}, "method")
            if method.get("name") != "hnsw" or method.get("space_type") != "cosinesimil":
                raise BadRequest("only hnsw with cosinesimil is understood")
            if method.get("engine") not in ("faiss", "lucene"):
                raise BadRequest("engine must be faiss or lucene")
            _keys(method.get("parameters", {}), {"ef_construction", "m"}, "method.parameters")
        else:
            raise BadRequest(f"[{fname}] field type {kind!r} not understood", "mapper_parsing_exception")

    def put_mapping(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT {index}/_mapping: new fields only (changing an existing field's type is refused, as by OpenSearch)."""
        index = self._index(name)
        props = _keys(body, {"properties"}, "put mapping", {"properties"})["properties"]
        for fname, spec in props.items():
            have = index.mapping["properties"].get(fname)
            if have is not None and have != spec:
                raise BadRequest(f"mapper [{fname}] cannot be changed", "illegal_argument_exception")
            self._check_field(fname, spec, {**index.mapping["properties"], **props})
        index.mapping["properties"].update(props)
        return {"acknowledged": True}

    def put_pipeline(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        _keys(body, {"description", "phase_results_processors"}, "pipeline", {"phase_results_processors"})
        procs = body["phase_results_processors"]
        if not isinstance(procs, list) or len(procs) != 1:
            raise BadRequest("exactly one phase results processor is understood")
        kind, spec = _single(procs[0], "processor")
        if kind == "normalization-processor":
            _keys(spec, {"normalization", "combination"}, kind)
            norm = _keys(spec.get("normalization", {}), {"technique"}, "normalization")
            comb = _keys(spec.get("combination", {}), {"technique", "parameters"}, "combination")
            if norm.get("technique", "min_max") != "min_max" or comb.get("technique") != "arithmetic_mean":
                raise BadRequest("only min_max + arithmetic_mean is understood")
            weights = _keys(comb.get("parameters", {}), {"weights"}, "parameters").get("weights")
            if weights is not None and abs(sum(weights) - 1.0) > 1e-6:
                raise BadRequest("weights must add up to 1.0", "illegal_argument_exception")
        elif kind == "score-ranker-processor":
            comb = _keys(
                _keys(spec, {"combination"}, kind).get("combination", {}), {"technique", "rank_constant"}, "c"
            )
            if comb.get("technique") != "rrf" or int(comb.get("rank_constant", 60)) < 1:
                raise BadRequest("only rrf with rank_constant >= 1 is understood")
        else:
            raise BadRequest(f"processor {kind!r} not understood")
        self.pipelines[name] = body
        return {"acknowledged": True}

    # -- documents -------------------------------------------------------------------------------------------
    def _validate_doc(self, idx: Index, doc: dict[str, Any]) -> tuple[str, str] | None:
        for fname, value in doc.items():
            spec = idx.props.get(fname)
            if spec is None:
                return (
                    "strict_dynamic_mapping_exception",
                    f"mapping set to strict, dynamic introduction of [{fname}]",
                )
            if spec["type"] == "knn_vector":
                if not isinstance(value, list) or len(value) != spec["dimension"]:
                    return "mapper_parsing_exception", f"Vector dimension mismatch for [{fname}]"
                if not any(value):
                    return "mapper_parsing_exception", "zero vector is not supported for cosinesimil"
            elif spec["type"] == "integer" and not isinstance(value, int):
                return "mapper_parsing_exception", f"failed to parse field [{fname}] of type [integer]"
        return None

    def bulk(self, default_index: str | None, lines: list[dict[str, Any]], params: dict[str, str]) -> dict:
        if "refresh" in params and self.serverless:
            raise BadRequest("refresh is not supported", "illegal_argument_exception")
        items, errors, i = [], False, 0
        while i < len(lines):
            op, meta = _single(lines[i], "bulk action")
            _keys(meta, {"_index", "_id"}, f"bulk {op}")
            name = meta.get("_index", default_index)
            if op not in ("index", "delete") or name is None:
                raise BadRequest(f"bulk action {op!r} not understood")
            idx = self.indices.get(name)
            if idx is None:
                raise BadRequest(f"no such index [{name}]", "index_not_found_exception", 404)
            if op == "delete":
                i += 1
                _id = meta.get("_id")
                found = idx.docs.pop(_id, None) is not None
                items.append(
                    {
                        "delete": {
                            "_index": name,
                            "_id": _id,
                            "result": "deleted" if found else "not_found",
                            "status": 200 if found else 404,
                        }
                    }
                )
                continue
            doc = lines[i + 1]
            i += 2
            result = self._index_one(idx, name, meta, doc)
            errors = errors or "error" in result
            items.append({"index": result})
        return {"took": 1, "errors": errors, "items": items}

    def _index_one(self, idx: Index, name: str, meta: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        if self.serverless and "_id" in meta:
            return {
                "_index": name,
                "_id": meta["_id"],
                "status": 400,
                "error": {
                    "type": "illegal_argument_exception",
                    "reason": "Document ID is not supported in create/index operation request",
                },
            }
        _id = meta.get("_id")
        if _id is None:
            self._next_id += 1
            _id = f"auto-{self._next_id:08d}"
        fail = self.fail_chunk_ids.get(str(doc.get("chunk_id")))
        if fail == 429:
            return {
                "_index": name,
                "_id": _id,
                "status": 429,
                "error": {
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of coordinating operation",
                },
            }
        problem = ("mapper_parsing_exception", "failed to parse") if fail else self._validate_doc(idx, doc)
        if problem:
            return {
                "_index": name,
                "_id": _id,
                "status": 400,
                "error": {"type": problem[0], "reason": problem[1]},
            }
        created = _id not in idx.docs
        idx.docs[_id] = doc
        return {
            "_index": name,
            "_id": _id,
            "_version": 1,
            "result": "created" if created else "updated",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "status": 201 if created else 200,
        }

    # -- queries ---------------------------------------------------------------------------------------------
    def matches(self, idx: Index, q: dict[str, Any], _id: str, doc: dict[str, Any]) -> bool:
        kind, spec = _single(q, "filter")
        if kind == "term":
            fname, value = _single(spec, "term")
            value = value["value"] if isinstance(value, dict) else value
            return doc.get(fname) == value
        if kind == "terms":
            fname, values = _single(spec, "terms")
            return doc.get(fname) in values
        if kind == "ids":
            return _id in _keys(spec, {"values"}, "ids", {"values"})["values"]
        if kind == "bool":
            _keys(spec, {"filter", "must_not", "must"}, "bool")
            if spec.get("must"):
                raise BadRequest("scoring clauses inside a filter are not understood here")
            return all(self.matches(idx, c, _id, doc) for c in spec.get("filter", [])) and not any(
                self.matches(idx, c, _id, doc) for c in spec.get("must_not", [])
            )
        raise BadRequest(f"filter query [{kind}] not understood")

    def _field_tokens(self, idx: Index, fname: str, doc: dict[str, Any]) -> list[str]:
        values = [doc[fname]] if fname in doc else []
        values += [doc[src] for src, spec in idx.props.items() if spec.get("copy_to") == fname and src in doc]
        return [t for v in values for t in analyze(str(v), idx.analyzer(fname))]

    def _bm25(
        self, idx: Index, spec: dict[str, Any], candidates: dict[str, dict[str, Any]]
    ) -> dict[str, float]:
        fname, value = _single(spec, "match")
        if fname not in idx.props or idx.props[fname]["type"] != "text":
            raise BadRequest(f"match on [{fname}] which is not a text field")
        text = _keys(value, {"query"}, "match", {"query"})["query"] if isinstance(value, dict) else value
        terms = analyze(str(text), idx.analyzer(fname))
        # Statistics over the whole shard (every tenant), as Lucene computes them.
        field_tokens = {i: self._field_tokens(idx, fname, d) for i, d in idx.docs.items()}
        with_field = {i: t for i, t in field_tokens.items() if t}
        n_docs = len(with_field)
        if not n_docs:
            return {}
        avgdl = sum(len(t) for t in with_field.values()) / n_docs
        scores: dict[str, float] = {}
        for term in terms:
            df = sum(1 for t in with_field.values() if term in t)
            if not df:
                continue
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            for i in candidates:
                toks = with_field.get(i)
                tf = toks.count(term) if toks else 0
                if tf:
                    norm = K1 * (1 - B + B * len(toks) / avgdl)
                    scores[i] = scores.get(i, 0.0) + idf * tf / (tf + norm)
        return scores

    def _knn(
        self, idx: Index, spec: dict[str, Any], candidates: dict[str, dict[str, Any]]
    ) -> dict[str, float]:
        fname, value = _single(spec, "knn")
        field_spec = idx.props.get(fname, {})
        if field_spec.get("type") != "knn_vector":
            raise BadRequest(f"knn on [{fname}] which is not a knn_vector field")
        value = _keys(value, {"vector", "k", "filter"}, "knn", {"vector", "k"})
        vec = [float(x) for x in value["vector"]]
        if len(vec) != field_spec["dimension"]:
            raise BadRequest("query vector has the wrong dimension", "illegal_argument_exception")
        qn = math.sqrt(sum(x * x for x in vec))
        if qn == 0:
            raise BadRequest("zero vector is not supported for cosinesimil", "illegal_argument_exception")
        flt = value.get("filter")
        scored = []
        for i, doc in candidates.items():
            if fname not in doc or (flt is not None and not self.matches(idx, flt, i, doc)):
                continue
            dv = doc[fname]
            dn = math.sqrt(sum(x * x for x in dv))
            cos = sum(a * b for a, b in zip(vec, dv, strict=True)) / (qn * dn)
            scored.append(((2.0 - (1.0 - cos)) / 2.0, i))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return {i: s for s, i in scored[: int(value["k"])]}

    def score(self, idx: Index, q: dict[str, Any]) -> dict[str, float]:
        """Scores of the documents a (non-hybrid) query matches."""
        kind, spec = _single(q, "query")
        docs = idx.docs
        if kind == "match":
            return self._bm25(idx, spec, docs)
        if kind == "knn":
            return self._knn(idx, spec, docs)
        if kind == "bool":
            _keys(spec, {"must", "filter", "must_not"}, "bool")
            kept = {
                i: d
                for i, d in docs.items()
                if all(self.matches(idx, c, i, d) for c in spec.get("filter", []))
                and not any(self.matches(idx, c, i, d) for c in spec.get("must_not", []))
            }
            musts = spec.get("must", [])
            if not musts:
                return dict.fromkeys(kept, 0.0)
            total: dict[str, float] | None = None
            for m in musts:
                mk, mspec = _single(m, "must")
                if mk != "match":
                    raise BadRequest(f"must clause [{mk}] not understood here")
                s = self._bm25(idx, mspec, kept)
                total = s if total is None else {i: total[i] + s[i] for i in total if i in s}
            return total or {}
        if kind in ("term", "terms", "ids"):
            return {i: 0.0 for i, d in docs.items() if self.matches(idx, q, i, d)}
        raise BadRequest(f"query [{kind}] not understood")

    @staticmethod
    def _top(scores: dict[str, float], size: int) -> list[tuple[str, float]]:
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:size]

    def _fuse(self, pipeline: dict[str, Any], subs: list[list[tuple[str, float]]]) -> dict[str, float]:
        kind, spec = _single(pipeline["phase_results_processors"][0], "processor")
        if kind == "score-ranker-processor":
            c = int(spec["combination"].get("rank_constant", 60))
            out: dict[str, float] = {}
            for ranked in subs:
                for rank, (i, _) in enumerate(ranked, start=1):
                    out[i] = out.get(i, 0.0) + 1.0 / (c + rank)
            return out
        weights = spec["combination"].get("parameters", {}).get("weights") or [1.0 / len(subs)] * len(subs)
        if len(weights) != len(subs):
            raise BadRequest(
                "number of weights does not match the number of sub-queries", "illegal_argument_exception"
            )
        normalised: list[dict[str, float]] = []
        for ranked in subs:
            if not ranked:
                normalised.append({})
                continue
            hi, lo = ranked[0][1], ranked[-1][1]
            norm = {}
            for i, s in ranked:
                if hi == lo:
                    norm[i] = SINGLE_RESULT_SCORE
                else:
                    v = (s - lo) / (hi - lo)
                    norm[i] = MIN_SCORE if v == 0.0 else v
            normalised.append(norm)
        every = {i for n in normalised for i in n}
        return {
            i: sum(w * n.get(i, 0.0) for w, n in zip(weights, normalised, strict=True)) / sum(weights)
            for i in every
        }

    def search(self, name: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        idx = self.indices.get(name)
        if idx is None:
            raise BadRequest(f"no such index [{name}]", "index_not_found_exception", 404)
        _keys(body, {"size", "_source", "query", "search_pipeline"}, "search body", {"query"})
        size = int(body.get("size", 10))
        pipeline_name = body.get("search_pipeline") or params.get("search_pipeline")
        kind, spec = _single(body["query"], "query")
        if kind == "hybrid":
            queries = _keys(spec, {"queries"}, "hybrid", {"queries"})["queries"]
            if not 1 <= len(queries) <= 5:
                raise BadRequest("hybrid query takes 1 to 5 queries")
            if pipeline_name not in self.pipelines:
                raise BadRequest(
                    "hybrid query needs a search pipeline with a normalization processor "
                    "(this fake refuses to guess)",
                    "illegal_argument_exception",
                )
            subs = [self._top(self.score(idx, q), size) for q in queries]
            ranked = self._top(self._fuse(self.pipelines[pipeline_name], subs), size)
        else:
            if pipeline_name is not None and pipeline_name not in self.pipelines:
                raise BadRequest(
                    f"pipeline [{pipeline_name}] is not defined", "resource_not_found_exception", 404
                )
            ranked = self._top(self.score(idx, body["query"]), size)
        hits = [self._hit(name, idx, i, s, body.get("_source", True)) for i, s in ranked]
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": len(hits), "relation": "eq"},
                "max_score": hits[0]["_score"] if hits else None,
                "hits": hits,
            },
        }

    @staticmethod
    def _hit(name: str, idx: Index, _id: str, score: float, source: Any) -> dict[str, Any]:
        hit: dict[str, Any] = {"_index": name, "_id": _id, "_score": score}
        if source is False:
            return hit
        doc = idx.docs[_id]
        if isinstance(source, dict):
            excluded = set(_keys(source, {"excludes"}, "_source")["excludes"])
            doc = {k: v for k, v in doc.items() if k not in excluded}
        hit["_source"] = doc
        return hit

    def count(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        idx = self._index(name)
        _keys(body, {"query"}, "count body")
        n = (
            sum(1 for i, d in idx.docs.items() if self.matches(idx, body["query"], i, d))
            if body
            else len(idx.docs)
        )
        return {"count": n, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}

    def delete_by_query(self, name: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        if self.serverless:
            raise BadRequest("_delete_by_query is not supported", "illegal_argument_exception", 404)
        idx = self._index(name)
        _keys(body, {"query"}, "delete_by_query body", {"query"})
        gone = [i for i, d in idx.docs.items() if self.matches(idx, body["query"], i, d)]
        for i in gone:
            del idx.docs[i]
        return {
            "took": 1,
            "timed_out": False,
            "total": len(gone),
            "deleted": len(gone),
            "batches": 1,
            "version_conflicts": 0,
            "noops": 0,
            "failures": [],
        }

    def _index(self, name: str) -> Index:
        if name not in self.indices:
            raise BadRequest(f"no such index [{name}]", "index_not_found_exception", 404)
        return self.indices[name]


def _ndjson(raw: bytes) -> list[dict[str, Any]]:
    if raw and not raw.endswith(b"\n"):
        raise BadRequest(
            "The bulk/msearch request must be terminated by a newline [\\n]", "illegal_argument_exception"
        )
    return [json.loads(line) for line in raw.decode().split("\n") if line.strip()]


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenSearchServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path = [unquote(p) for p in parts.path.split("/") if p]
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.server.fake
        try:
            ndjson = bool(path) and path[-1] in ("_bulk", "_msearch")
            body: Any = _ndjson(raw) if ndjson else (json.loads(raw) if raw else {})
            with fake.lock:
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": "/" + "/".join(path),
                        "params": params,
                        "body": body,
                        "headers": dict(self.headers.items()),
                    }
                )
                status, payload = self._route(fake, path, params, body)
        except BadRequest as exc:
            status, payload = (
                exc.status,
                {
                    "error": {
                        "type": exc.kind,
                        "reason": exc.reason,
                        "root_cause": [{"type": exc.kind, "reason": exc.reason}],
                    },
                    "status": exc.status,
                },
            )
        except (ValueError, KeyError, TypeError) as exc:
            status, payload = (
                400,
                {"error": {"type": "parsing_exception", "reason": repr(exc)}, "status": 400},
            )
        self._send(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _route(
        self, fake: FakeOpenSearch, path: list[str], params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        m = self.command
        if path[:2] == ["_search", "pipeline"] and len(path) == 3:
            if m == "PUT":
                return 200, fake.put_pipeline(path[2], body)
            if m == "GET":
                if path[2] not in fake.pipelines:
                    return 404, {}
                return 200, {path[2]: fake.pipelines[path[2]]}
        if path == ["_bulk"] and m in ("POST", "PUT"):
            return 200, fake.bulk(None, body, params)
        if path == ["_msearch"] and m in ("GET", "POST"):
            return 200, self._msearch(fake, None, body, params)
        if len(path) == 1 and not path[0].startswith("_"):
            name = path[0]
            if m == "HEAD":
                return (200 if name in fake.indices else 404), None
            if m == "PUT":
                return 200, fake.create_index(name, body)
            if m == "GET":
                return 200, {name: {"mappings": fake._index(name).mapping}}
        if len(path) == 2 and not path[0].startswith("_"):
            name, op = path
            if op == "_mapping" and m == "GET":
                return 200, {name: {"mappings": fake._index(name).mapping}}
            if op == "_mapping" and m == "PUT":
                return 200, fake.put_mapping(name, body)
            if op == "_bulk" and m in ("POST", "PUT"):
                return 200, fake.bulk(name, body, params)
            if op == "_search" and m in ("GET", "POST"):
                return 200, fake.search(name, body, params)
            if op == "_msearch" and m in ("GET", "POST"):
                return 200, self._msearch(fake, name, body, params)
            if op == "_count" and m in ("GET", "POST"):
                return 200, fake.count(name, body)
            if op == "_delete_by_query" and m == "POST":
                return 200, fake.delete_by_query(name, body, params)
            if op == "_refresh" and m in ("GET", "POST"):
                if fake.serverless:
                    raise BadRequest("_refresh is not supported", "illegal_argument_exception", 404)
                fake._index(name)
                return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        raise BadRequest(f"{m} /{'/'.join(path)} is not understood by the fake", "invalid_request", 400)

    @staticmethod
    def _msearch(fake: FakeOpenSearch, default: str | None, lines: list[Any], params: dict[str, str]) -> dict:
        if len(lines) % 2:
            raise BadRequest("msearch needs header/body pairs")
        responses = []
        for header, body in zip(lines[::2], lines[1::2], strict=True):
            _keys(header, {"index"}, "msearch header")
            try:
                r = fake.search(header.get("index", default), body, {})
                r["status"] = 200
            except BadRequest as exc:
                r = {"error": {"type": exc.kind, "reason": exc.reason}, "status": exc.status}
            responses.append(r)
        return {"took": 1, "responses": responses}


class FakeOpenSearchServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, serverless: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = FakeOpenSearch(serverless=serverless)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@contextmanager
def running_fake_opensearch(*, serverless: bool = False) -> Iterator[FakeOpenSearchServer]:
    server = FakeOpenSearchServer(serverless=serverless)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
