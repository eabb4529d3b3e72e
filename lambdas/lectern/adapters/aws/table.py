"""The single DynamoDB table: key design and the helpers every item type shares.

One table, two string keys (`pk` partition, `sk` sort), on-demand billing. Items of one tenant share a
partition, so every read of a tenant's data is a Query on `pk = TENANT#{tenant}`; nothing ever needs a Scan,
and no key can be built without a tenant. Item types are told apart by the sort-key prefix:

| item         | pk                | sk                       | notes                                     |
|--------------|-------------------|--------------------------|-------------------------------------------|
| document     | `TENANT#{tenant}` | `DOC#{document_id}`      | metadata + status (DynamoDocumentRepo.)   |
| idempotency  | `TENANT#{tenant}` | `IDEMPOTENCY#{key}`      | TTL item                                  |
| answer cache | `TENANT#{tenant}` | `CACHE#{hash}`           | TTL item                                  |
| feedback     | `TENANT#{tenant}` | `FEEDBACK#{query_id}`    |                                           |
| query log    | `TENANT#{tenant}` | `QUERY#{timestamp}#{id}` | TTL item; sorts by time within the tenant |

One global secondary index, `status-updated` (partition `status`, sort `updated_at`, keys only): documents by
status and age, for the sweep that fails documents stuck UPLOADING/PROCESSING (`domain.sweep`). Only document
items carry both attributes, so nothing else is projected into it.

TTL items carry `ttl` (epoch seconds, a Number): DynamoDB's TTL must be enabled on that attribute name by the
stack (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-how-to.html). TTL
deletion is lazy (typically within days), so readers of TTL items must also compare `ttl` with the clock.

`create_table` exists for tests only; the CDK stack creates the real table and should build its key schema
from the constants below so the fake cannot drift from the deployed table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

PK = "pk"
SK = "sk"
TTL_ATTRIBUTE = "ttl"
ITEM_TYPE = "type"  # "DOCUMENT", "IDEMPOTENCY", ... (for humans reading the table and for exports)

TENANT_PREFIX = "TENANT#"
DOC_PREFIX = "DOC#"
IDEMPOTENCY_PREFIX = "IDEMPOTENCY#"
CACHE_PREFIX = "CACHE#"
FEEDBACK_PREFIX = "FEEDBACK#"
QUERY_PREFIX = "QUERY#"

KEY_SCHEMA: list[dict[str, str]] = [
    {"AttributeName": PK, "KeyType": "HASH"},
    {"AttributeName": SK, "KeyType": "RANGE"},
]
STATUS_INDEX = "status-updated"
STATUS_INDEX_PK = "status"
STATUS_INDEX_SK = "updated_at"
ATTRIBUTE_DEFINITIONS: list[dict[str, str]] = [  # the keys of the table and of its index, by name
    {"AttributeName": PK, "AttributeType": "S"},
    {"AttributeName": SK, "AttributeType": "S"},
    {"AttributeName": STATUS_INDEX_PK, "AttributeType": "S"},
    {"AttributeName": STATUS_INDEX_SK, "AttributeType": "S"},
]
STATUS_INDEX_SCHEMA: list[dict[str, str]] = [
    {"AttributeName": STATUS_INDEX_PK, "KeyType": "HASH"},
    {"AttributeName": STATUS_INDEX_SK, "KeyType": "RANGE"},
]


def _no_hash(value: str, what: str) -> str:
    if not value or "#" in value:
        raise ValueError(f"invalid {what} {value!r} for a table key")
    return value


def tenant_pk(tenant_id: str) -> str:
    return TENANT_PREFIX + _no_hash(tenant_id, "tenant id")


def document_sk(document_id: str) -> str:
    return DOC_PREFIX + _no_hash(document_id, "document id")


def idempotency_sk(key: str) -> str:
    return IDEMPOTENCY_PREFIX + key


def cache_sk(key_hash: str) -> str:
    return CACHE_PREFIX + key_hash


def feedback_sk(query_id: str) -> str:
    return FEEDBACK_PREFIX + query_id


def query_sk(timestamp_iso: str, query_id: str) -> str:
    return f"{QUERY_PREFIX}{timestamp_iso}#{query_id}"


def document_key(tenant_id: str, document_id: str) -> dict[str, dict[str, str]]:
    """The low-level (typed) primary key of a document item."""
    return {PK: {"S": tenant_pk(tenant_id)}, SK: {"S": document_sk(document_id)}}


def ttl_in(seconds: float, *, now: float | None = None) -> int:
    """The `ttl` value (epoch seconds) for an item that should expire `seconds` from now."""
    return int((time.time() if now is None else now) + seconds)


def expired(item: Mapping[str, Any], *, now: float | None = None) -> bool:
    """True when a TTL item is past its `ttl` (TTL deletes late, so readers check this themselves)."""
    ttl = item.get(TTL_ATTRIBUTE)
    return ttl is not None and int(ttl) <= (time.time() if now is None else now)


# -- plain Python <-> DynamoDB attribute values --------------------------------------------------------------
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB cannot store the float {value!r}")
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo_value(v) for v in value]
    return value


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_value(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo_value(v) for v in value}
    return value


def serialize(value: Any) -> dict[str, Any]:
    """A plain value (str, int, float, bool, None, list, dict) as a typed attribute value (float: Decimal)."""
    return _serializer.serialize(_to_dynamo_value(value))


def serialize_item(item: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A plain dict as a typed item. Keys whose value is None are left out (absent reads back as None)."""
    return {k: serialize(v) for k, v in item.items() if v is not None}


def deserialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A typed item as plain Python: whole numbers become int, others float (never Decimal)."""
    return {k: _from_dynamo_value(_deserializer.deserialize(v)) for k, v in item.items()}


def create_table(client: Any, name: str, *, enable_ttl: bool = True) -> None:
    """Create the table with the production key schema and on-demand billing (tests only: CDK owns it)."""
    client.create_table(
        TableName=name,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
        GlobalSecondaryIndexes=[
            {
                "IndexName": STATUS_INDEX,
                "KeySchema": STATUS_INDEX_SCHEMA,
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    if enable_ttl:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
