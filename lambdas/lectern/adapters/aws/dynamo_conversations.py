"""The AWS `ConversationStore`: a table of its own (only the API function is granted it: conversation turns hold
question and answer text, which the main table's readers — the ingestion functions — must not see).

One item per conversation, its turns a list attribute (at most `max_turns` short turns, well under the 400 KB
item limit):

| pk                                  | sk             | holds                                                   |
|-------------------------------------|----------------|---------------------------------------------------------|
| `TENANT#{tenant}#OWNER#{owner}`     | `CONV#{id}`    | title, created_at, updated_at, turn_count, turns, `ttl` |

Listing is one Query on the owner's partition with a projection that leaves the turns out; appending is one
conditional UpdateItem (`list_append`, exists, under max_turns, not expired); creating is a conditional PutItem.
`ttl` (epoch seconds) moves `retention_days` past the last turn; TTL deletes late, so readers check it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from lectern.adapters.aws.dynamo_documents import _error_code, _low_level
from lectern.adapters.aws.table import PK, SK, TTL_ATTRIBUTE, deserialize_item, serialize, serialize_item, tenant_pk
from lectern.domain.conversations import Conversation, Turn, turn_of, turn_to_dict
from lectern.domain.errors import Conflict, NotFound

CONV_PREFIX = "CONV#"
_HEADER = "pk, sk, conversation_id, title, created_at, updated_at, turn_count, #ttl"


def owner_pk(tenant_id: str, owner: str) -> str:
    if not owner or "#" in owner:
        raise ValueError(f"invalid owner {owner!r} for a table key")
    return f"{tenant_pk(tenant_id)}#OWNER#{owner}"


class DynamoConversationStore:
    def __init__(
        self,
        table_name: str,
        *,
        retention_days: int = 30,
        client_or_resource: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self.retention_s = retention_days * 86400
        self.client = _low_level(client_or_resource)
        self.clock = clock

    def _key(self, tenant_id: str, owner: str, conversation_id: str) -> dict[str, Any]:
        return {PK: {"S": owner_pk(tenant_id, owner)}, SK: {"S": CONV_PREFIX + conversation_id}}

    def _conversation(self, tenant_id: str, owner: str, item: dict[str, Any]) -> Conversation | None:
        data = deserialize_item(item)
        if int(data.get(TTL_ATTRIBUTE, 0)) <= self.clock():
            return None
        turns = tuple(turn_of(t) for t in data.get("turns", ()))
        return Conversation(
            tenant_id,
            owner,
            data["conversation_id"],
            data["title"],
            data["created_at"],
            data["updated_at"],
            turns,
            int(data["turn_count"]),
        )

    def create(self, conversation: Conversation, first_turn: Turn) -> None:
        c = conversation
        item = serialize_item(
            {
                **{k: v["S"] for k, v in self._key(c.tenant_id, c.owner, c.conversation_id).items()},
                "type": "CONVERSATION",
                "conversation_id": c.conversation_id,
                "title": c.title,
                "created_at": c.created_at,
                "updated_at": first_turn.at,
                "turn_count": 1,
                "turns": [turn_to_dict(first_turn)],
                TTL_ATTRIBUTE: int(self.clock()) + self.retention_s,
            }
        )
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                raise Conflict(f"Conversation {c.conversation_id} already exists.") from None
            raise

    def get(self, tenant_id: str, owner: str, conversation_id: str) -> Conversation | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(tenant_id, owner, conversation_id), ConsistentRead=True
        ).get("Item")
        return self._conversation(tenant_id, owner, item) if item else None

    def list(self, tenant_id: str, owner: str) -> list[Conversation]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :conv)",
            "ExpressionAttributeValues": {":pk": {"S": owner_pk(tenant_id, owner)}, ":conv": {"S": CONV_PREFIX}},
            "ProjectionExpression": _HEADER,
            "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
        }
        found: list[Conversation] = []
        while True:
            out = self.client.query(**kwargs)
            for item in out.get("Items", []):
                conv = self._conversation(tenant_id, owner, item)
                if conv is not None:
                    found.append(conv)
            if "LastEvaluatedKey" not in out:
                break
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return sorted(found, key=lambda c: (c.updated_at, c.conversation_id), reverse=True)

    def append(self, tenant_id: str, owner: str, conversation_id: str, turn: Turn, *, max_turns: int) -> None:
        now = int(self.clock())
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(tenant_id, owner, conversation_id),
                UpdateExpression="SET turns = list_append(turns, :t), updated_at = :u, #ttl = :ttl ADD turn_count :one",
                ConditionExpression="attribute_exists(pk) AND #ttl > :now AND turn_count < :max",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":t": serialize([turn_to_dict(turn)]),
                    ":u": {"S": turn.at},
                    ":ttl": {"N": str(now + self.retention_s)},
                    ":now": {"N": str(now)},
                    ":one": {"N": "1"},
                    ":max": {"N": str(max_turns)},
                },
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            if self.get(tenant_id, owner, conversation_id) is None:
                raise NotFound(f"No conversation {conversation_id}.") from None
            raise Conflict(f"Conversation {conversation_id} has reached {max_turns} turns.") from None

    def delete(self, tenant_id: str, owner: str, conversation_id: str) -> bool:
        out = self.client.delete_item(
            TableName=self.table_name, Key=self._key(tenant_id, owner, conversation_id), ReturnValues="ALL_OLD"
        )
        old = out.get("Attributes")
        return bool(old) and self._conversation(tenant_id, owner, old) is not None


def create_conversations_table(client: Any, name: str) -> None:
    """Create the table with the stack's key schema and TTL (tests only: CDK owns it)."""
    from lectern.adapters.aws.table import KEY_SCHEMA

    client.create_table(
        TableName=name,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=[{"AttributeName": PK, "AttributeType": "S"}, {"AttributeName": SK, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
