"""The AWS `QueryLog`: query traces and feedback in the single DynamoDB table (keys in `table.py`).

Each answer writes two items of the tenant's partition in one BatchWriteItem:

| item      | sk                          | holds                                                        |
|-----------|-----------------------------|--------------------------------------------------------------|
| trace     | `QUERY#{created_at}#{id}`   | the trace; sorts by time, so a period is one Query (BETWEEN) |
| pointer   | `FEEDBACK#{id}`             | `trace_sk`, and the feedback once given                       |

Feedback knows only the query id, so the pointer item finds the trace without a Scan or an index. Giving
feedback is a conditional UpdateItem on the pointer (`attribute_exists(pk)`: an unknown id of this tenant is
NotFound) and one on the trace, so reports that Query traces see the rating. Both items are TTL items
(`retention_days`); readers also check `ttl` themselves because TTL deletes late.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from dataclasses import fields as dc_fields
from typing import Any

from botocore.exceptions import ClientError

from lectern.adapters.aws.dynamo_documents import _error_code, _low_level
from lectern.adapters.aws.table import (
    ITEM_TYPE,
    PK,
    QUERY_PREFIX,
    SK,
    TTL_ATTRIBUTE,
    deserialize_item,
    expired,
    feedback_sk,
    query_sk,
    serialize,
    serialize_item,
    tenant_pk,
    ttl_in,
)
from lectern.domain.errors import NotFound
from lectern.domain.feedback import QueryTrace, Rating

_FIELDS = [f.name for f in dc_fields(QueryTrace)]
QUERY_ITEM = "QUERY"
FEEDBACK_ITEM = "FEEDBACK"
_BATCH_RETRIES = 5


def _item_to_trace(item: dict[str, Any]) -> QueryTrace:
    data = deserialize_item(item)
    values: dict[str, Any] = {k: data.get(k) for k in _FIELDS}
    values["cost_usd"] = float(values["cost_usd"] or 0.0)
    values["cache_hit"] = bool(values["cache_hit"])
    values["abstained"] = bool(values["abstained"])
    return QueryTrace(**values)


class DynamoQueryLog:
    def __init__(self, table_name: str, *, retention_days: int = 90, client_or_resource: Any = None) -> None:
        self.table_name = table_name
        self.retention_s = retention_days * 86400
        self.client = _low_level(client_or_resource)

    def record(self, trace: QueryTrace) -> None:
        pk = tenant_pk(trace.tenant_id)
        sk = query_sk(trace.created_at, trace.query_id)
        ttl = ttl_in(self.retention_s)
        trace_item = serialize_item(
            {PK: pk, SK: sk, ITEM_TYPE: QUERY_ITEM, TTL_ATTRIBUTE: ttl, **asdict(trace)}
        )
        pointer = serialize_item(
            {
                PK: pk,
                SK: feedback_sk(trace.query_id),
                ITEM_TYPE: FEEDBACK_ITEM,
                TTL_ATTRIBUTE: ttl,
                "trace_sk": sk,
            }
        )
        requests = {
            self.table_name: [{"PutRequest": {"Item": trace_item}}, {"PutRequest": {"Item": pointer}}]
        }
        for attempt in range(_BATCH_RETRIES):
            out = self.client.batch_write_item(RequestItems=requests)
            requests = out.get("UnprocessedItems") or {}
            if not requests:
                return
            time.sleep(0.05 * 2**attempt)  # throttled items come back unprocessed: back off and resend them
        raise RuntimeError(f"query trace {trace.query_id} not written after {_BATCH_RETRIES} attempts")

    def _pointer(self, tenant_id: str, query_id: str) -> dict[str, Any] | None:
        out = self.client.get_item(
            TableName=self.table_name,
            Key={PK: {"S": tenant_pk(tenant_id)}, SK: {"S": feedback_sk(query_id)}},
            ConsistentRead=True,
        )
        item = out.get("Item")
        return deserialize_item(item) if item and not expired(deserialize_item(item)) else None

    def get(self, tenant_id: str, query_id: str) -> QueryTrace | None:
        pointer = self._pointer(tenant_id, query_id)
        if pointer is None:
            return None
        out = self.client.get_item(
            TableName=self.table_name,
            Key={PK: {"S": tenant_pk(tenant_id)}, SK: {"S": pointer["trace_sk"]}},
            ConsistentRead=True,
        )
        item = out.get("Item")
        return _item_to_trace(item) if item else None

    def add_feedback(
        self, tenant_id: str, query_id: str, rating: Rating, comment: str | None, at: str
    ) -> QueryTrace:
        pk = tenant_pk(tenant_id)
        names = {"#rating": "rating", "#comment": "comment", "#at": "feedback_at"}
        values = {":rating": serialize(rating), ":at": serialize(at)}
        if comment:
            values[":comment"] = serialize(comment)
            update = "SET #rating = :rating, #comment = :comment, #at = :at"
        else:
            update = "SET #rating = :rating, #at = :at REMOVE #comment"
        try:
            out = self.client.update_item(
                TableName=self.table_name,
                Key={PK: {"S": pk}, SK: {"S": feedback_sk(query_id)}},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            trace_sk = deserialize_item(out["Attributes"])["trace_sk"]
            out = self.client.update_item(
                TableName=self.table_name,
                Key={PK: {"S": pk}, SK: {"S": trace_sk}},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                raise NotFound(f"No query {query_id} to give feedback on.") from None
            raise
        return _item_to_trace(out["Attributes"])

    def traces(self, tenant_id: str, since: str, until: str) -> list[QueryTrace]:
        # sk = QUERY#{created_at}#{id}: BETWEEN QUERY#{since} AND QUERY#{until} is since <= created_at < until
        # ("…{until}#id" sorts after "…{until}").
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": {"S": tenant_pk(tenant_id)},
                ":lo": {"S": QUERY_PREFIX + since},
                ":hi": {"S": QUERY_PREFIX + until},
            },
        }
        found: list[QueryTrace] = []
        now = time.time()
        while True:
            out = self.client.query(**kwargs)
            for item in out.get("Items", []):
                if not expired(deserialize_item(item), now=now):
                    found.append(_item_to_trace(item))
            if "LastEvaluatedKey" not in out:
                return found
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
