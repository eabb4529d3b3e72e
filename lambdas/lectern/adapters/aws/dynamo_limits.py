"""`LimitCounters` on the single DynamoDB table: one item per (tenant, counter), `pk=TENANT#t`, `sk=LIMIT#name`,
incremented with an atomic `ADD` (UpdateItem returns the new value) and expired by the table's TTL attribute.
Every Lambda instance sees the same counts; TTL deletion is lazy, so reads also compare `ttl` with the clock."""

from __future__ import annotations

import time
from typing import Any

from lectern.adapters.aws import clients
from lectern.adapters.aws.table import PK, SK, TTL_ATTRIBUTE, tenant_pk

LIMIT_PREFIX = "LIMIT#"


class DynamoLimitCounters:
    def __init__(self, table_name: str, *, client: Any = None, clock=time.time) -> None:
        self.table_name = table_name
        self.client = client or clients.client("dynamodb")
        self.clock = clock

    def _key(self, tenant_id: str, name: str) -> dict[str, Any]:
        return {PK: {"S": tenant_pk(tenant_id)}, SK: {"S": LIMIT_PREFIX + name}}

    def incr(self, tenant_id: str, name: str, amount: int, ttl_s: int) -> int:
        out = self.client.update_item(
            TableName=self.table_name,
            Key=self._key(tenant_id, name),
            UpdateExpression="ADD #v :a SET #ttl = if_not_exists(#ttl, :t), #type = :type",
            ExpressionAttributeNames={"#v": "value", "#ttl": TTL_ATTRIBUTE, "#type": "type"},
            ExpressionAttributeValues={
                ":a": {"N": str(int(amount))},
                ":t": {"N": str(int(self.clock()) + int(ttl_s))},
                ":type": {"S": "LIMIT"},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(out["Attributes"]["value"]["N"])

    def get(self, tenant_id: str, name: str) -> int:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(tenant_id, name), ConsistentRead=True
        ).get("Item")
        if not item or int(item.get(TTL_ATTRIBUTE, {}).get("N", "0")) < self.clock():
            return 0
        return int(item["value"]["N"])
