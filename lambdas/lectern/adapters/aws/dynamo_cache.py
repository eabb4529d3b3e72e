"""The AWS answer cache: both tiers in the single DynamoDB table, in the tenant's own partition.

| item   | pk                | sk              | attributes                                            |
|--------|-------------------|-----------------|-------------------------------------------------------|
| entry  | `TENANT#{tenant}` | `CACHE#E#{key}` | scope, question, answer (JSON), sources, created, ttl |
| vector | `TENANT#{tenant}` | `CACHE#V#{key}` | scope, vector (float16 bytes), created, ttl           |

Exact tier: one GetItem of the entry. Similarity tier: one Query of the tenant's vector items
(`begins_with(sk, "CACHE#V#")`, filtered on scope and `ttl`, paginated), cosine in numpy, then one GetItem
per candidate at or above the threshold (usually none or one). Only GetItem, PutItem, DeleteItem and Query
are used: the table actions the API function's role already has (cdk/stacks/service.py), no Batch* or Scan.

Vectors live in their own small items so the Query reads ~2 KB per entry (1024 float16 dimensions) instead
of whole answers; its cost grows with the tenant's entry count, which is why `max_entries` is small on AWS
(500 x 2 KB = 1 MB, about 128 read request units eventually consistent per lookup; a 256-dimension Titan
configuration is a quarter of that). float16 moves a cosine by about 1e-3.

Eviction is oldest-first (no write on a hit, so a hit costs reads only): after a put, when the tenant holds
more than `max_entries` vectors, the oldest pairs are deleted. Expired items are removed by DynamoDB TTL
(lazily, so reads also compare the expiry with the clock). Chosen over OpenSearch k-NN for the similarity
tier: no second index to create, secure and keep in step with TTL and deletion, at the price of a bounded
scan of the tenant's cache partition per lookup.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from lectern.adapters.aws.dynamo_documents import _low_level
from lectern.adapters.aws.table import (
    ITEM_TYPE,
    PK,
    SK,
    TTL_ATTRIBUTE,
    cache_sk,
    deserialize_item,
    serialize,
    serialize_item,
    tenant_pk,
)
from lectern.domain.cache import CacheEntry, best_matches, vector_from_bytes, vector_to_bytes

ENTRY = "E#"
VECTOR = "V#"
_F16 = "<f2"


def _ttl(expires_at: float) -> int:
    return int(expires_at) + (0 if expires_at == int(expires_at) else 1)


class DynamoAnswerCache:
    def __init__(
        self, table_name: str, *, client_or_resource: Any = None, page_limit: int | None = None
    ) -> None:
        self.table_name = table_name
        self.client = _low_level(client_or_resource)
        self.page_limit = page_limit  # Query page size (tests: force pagination)

    def _key(self, tenant_id: str, kind: str, key: str) -> dict[str, Any]:
        return {PK: {"S": tenant_pk(tenant_id)}, SK: {"S": cache_sk(kind + key)}}

    def get(self, tenant_id: str, key: str, *, now: float) -> CacheEntry | None:
        item = self.client.get_item(TableName=self.table_name, Key=self._key(tenant_id, ENTRY, key)).get(
            "Item"
        )
        if not item:
            return None
        return self._entry(tenant_id, key, item, now)

    def _entry(self, tenant_id: str, key: str, item: dict[str, Any], now: float) -> CacheEntry | None:
        data = deserialize_item(item)
        if float(data["expires_at"]) <= now:
            return None
        return CacheEntry(
            tenant_id=tenant_id,
            key=key,
            scope=str(data["scope"]),
            question=str(data["question"]),
            vector=None,
            answer=json.loads(data["answer"]),
            sources={str(k): str(v) for k, v in (data.get("sources") or {}).items()},
            created_at=float(data["created"]),
            expires_at=float(data["expires_at"]),
        )

    def _vectors(self, tenant_id: str, *, scope: str | None, now: float) -> list[dict[str, Any]]:
        names = {"#sk": SK, "#ttl": TTL_ATTRIBUTE}
        values: dict[str, Any] = {":pk": {"S": tenant_pk(tenant_id)}, ":v": {"S": cache_sk(VECTOR)}}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(#sk, :v)",
            "ProjectionExpression": "#sk, vector, created, #ttl",
        }
        if scope is not None:
            kwargs["FilterExpression"] = "#scope = :scope AND #ttl > :now"
            names["#scope"] = "scope"
            values[":scope"] = {"S": scope}
            values[":now"] = serialize(int(now))
        kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = values
        if self.page_limit:
            kwargs["Limit"] = self.page_limit
        items: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def nearest(
        self,
        tenant_id: str,
        scope: str,
        vector: np.ndarray,
        k: int,
        *,
        now: float,
        min_similarity: float = -1.0,
    ) -> list[tuple[CacheEntry, float]]:
        q = np.asarray(vector, dtype=np.float32)
        rows = [
            r for r in self._vectors(tenant_id, scope=scope, now=now) if len(r["vector"]["B"]) == q.size * 2
        ]
        if not rows:
            return []
        matrix = np.stack([vector_from_bytes(r["vector"]["B"], _F16) for r in rows])
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        out = []
        for i, sim in best_matches(matrix, q, k):
            if sim < min_similarity:
                break  # not fetched: the caller would not use it
            entry = self.get(tenant_id, rows[i][SK]["S"].removeprefix(cache_sk(VECTOR)), now=now)
            if entry is not None:
                out.append((entry, sim))
        return out

    def put(self, entry: CacheEntry, *, max_entries: int) -> None:
        pk = tenant_pk(entry.tenant_id)
        ttl = _ttl(entry.expires_at)
        entry_item = {
            PK: pk,
            SK: cache_sk(ENTRY + entry.key),
            ITEM_TYPE: "CACHE_ENTRY",
            "scope": entry.scope,
            "question": entry.question,
            "answer": json.dumps(entry.answer),
            "sources": entry.sources,
            "created": entry.created_at,
            "expires_at": entry.expires_at,
            TTL_ATTRIBUTE: ttl,
        }
        # the entry first: a vector without its entry is never a hit (its GetItem finds nothing)
        self.client.put_item(TableName=self.table_name, Item=serialize_item(entry_item))
        if entry.vector is not None:
            vector_item = serialize_item(
                {
                    PK: pk,
                    SK: cache_sk(VECTOR + entry.key),
                    ITEM_TYPE: "CACHE_VECTOR",
                    "scope": entry.scope,
                    "created": entry.created_at,
                    TTL_ATTRIBUTE: ttl,
                }
            )
            vector_item["vector"] = {"B": vector_to_bytes(entry.vector, _F16)}
            self.client.put_item(TableName=self.table_name, Item=vector_item)
        self._evict(entry.tenant_id, max_entries)

    def _evict(self, tenant_id: str, max_entries: int) -> None:
        rows = self._vectors(tenant_id, scope=None, now=0)
        if len(rows) <= max_entries:
            return
        rows.sort(key=lambda r: float(r["created"]["N"]))
        for row in rows[: len(rows) - max_entries]:
            self.delete(tenant_id, row[SK]["S"].removeprefix(cache_sk(VECTOR)))

    def touch(self, tenant_id: str, key: str, *, now: float) -> None:
        return None  # oldest-first eviction: a hit stays a read

    def delete(self, tenant_id: str, key: str) -> None:
        for kind in (
            VECTOR,
            ENTRY,
        ):  # vector first: a lone entry still hits exactly
            self.client.delete_item(TableName=self.table_name, Key=self._key(tenant_id, kind, key))

    def count(self, tenant_id: str) -> int:
        return len(self._vectors(tenant_id, scope=None, now=0))
