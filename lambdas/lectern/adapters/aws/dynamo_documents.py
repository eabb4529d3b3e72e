"""The AWS `DocumentRepository`: document items in the single DynamoDB table (see `table.py` for the keys).

Status transitions are one conditional UpdateItem each (`attribute_exists(pk) AND #status IN (...)`), so
two events racing for the same document cannot both win and a late or repeated event cannot move an INDEXED
document back to PROCESSING. On a failed condition DynamoDB returns the item as it was
(`ReturnValuesOnConditionCheckFailure = ALL_OLD`,
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html), so a Conflict (the item
is in another status) needs no second read; without a returned item the document is re-read once
(consistent read) to tell NotFound from a Conflict.

Same fields and semantics as `adapters.local.sqlite_documents.SqliteDocumentRepository`: timestamps are the
ISO strings of `domain.clock`, `attempts` is kept beside the Document fields, a field set to None is removed.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from dataclasses import fields as dc_fields
from typing import Any

import boto3
from botocore.exceptions import ClientError

from lectern.adapters.aws import clients
from lectern.adapters.aws.table import (
    DOC_PREFIX,
    ITEM_TYPE,
    PK,
    SK,
    STATUS_INDEX,
    STATUS_INDEX_PK,
    STATUS_INDEX_SK,
    TENANT_PREFIX,
    deserialize_item,
    document_key,
    document_sk,
    serialize,
    serialize_item,
    tenant_pk,
)
from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import Conflict, NotFound
from lectern.domain.models import Document, DocumentStatus
from lectern.domain.ports import UPDATABLE_DOCUMENT_FIELDS

_DOC_FIELDS = [f.name for f in dc_fields(Document)]
_UPDATABLE = UPDATABLE_DOCUMENT_FIELDS
DOCUMENT_ITEM = "DOCUMENT"


def _item_to_doc(item: dict[str, Any]) -> Document:
    data = deserialize_item(item)
    values: dict[str, Any] = {k: data.get(k) for k in _DOC_FIELDS}
    values["status"] = DocumentStatus(values["status"])
    return Document(**values)


def _low_level(client_or_resource: Any) -> Any:
    """A plain low-level DynamoDB client (typed attribute values) from a client, a resource, or nothing.

    A resource's own `meta.client` cannot be used: boto3 hooks it to (de)serialize values itself. For a
    resource, a new client is made with its region, endpoint and config (credentials: the default chain)."""
    if client_or_resource is None:
        return clients.client("dynamodb", config=clients.client_config(read_timeout=10.0))
    if hasattr(client_or_resource, "update_item"):
        return client_or_resource
    meta = client_or_resource.meta.client.meta
    return boto3.session.Session(region_name=meta.region_name).client(
        "dynamodb", endpoint_url=meta.endpoint_url, config=meta.config
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoDocumentRepository:
    def __init__(self, table_name: str, *, client_or_resource: Any = None) -> None:
        self.table_name = table_name
        self.client = _low_level(client_or_resource)

    def create(self, doc: Document) -> None:
        item = {
            PK: tenant_pk(doc.tenant_id),
            SK: document_sk(doc.document_id),
            ITEM_TYPE: DOCUMENT_ITEM,
            **asdict(doc),
            "status": doc.status.value,
            "attempts": 0,
        }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize_item(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                raise Conflict(f"Document {doc.document_id} already exists.") from exc
            raise

    def get(self, tenant_id: str, document_id: str) -> Document | None:
        resp = self.client.get_item(
            TableName=self.table_name, Key=document_key(tenant_id, document_id), ConsistentRead=True
        )
        item = resp.get("Item")
        return _item_to_doc(item) if item else None

    def list(self, tenant_id: str) -> list[Document]:
        """All documents of one tenant: a Query on its partition (every page), never a Scan."""
        docs: list[Document] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :doc)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": {"S": tenant_pk(tenant_id)}, ":doc": {"S": DOC_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            resp = self.client.query(**kwargs)
            docs.extend(_item_to_doc(item) for item in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            kwargs["ExclusiveStartKey"] = last
        docs.sort(key=lambda d: (d.created_at, d.document_id))  # the local repository's order
        return docs

    def find_by_source(self, tenant_id: str, source_path: str) -> builtins.list[Document]:
        """Every document of the tenant with this source path, oldest first (the tenant's partition, filtered)."""
        return [d for d in self.list(tenant_id) if d.source_path == source_path]

    def update(
        self,
        tenant_id: str,
        document_id: str,
        *,
        status: DocumentStatus,
        allowed_from: Sequence[DocumentStatus],
        **fields: object,
    ) -> Document:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        allowed = list(dict.fromkeys(DocumentStatus(s) for s in allowed_from))
        if not allowed:  # `IN ()` is not valid syntax; nothing may move, so answer as a refused update would
            current = self.get(tenant_id, document_id)
            if current is None:
                raise NotFound(f"Document {document_id} was not found.")
            raise Conflict(
                f"Document {document_id} is {current.status.value}; it cannot become {status.value}."
            )

        expression, condition, names, values = _update_expression(status, allowed, fields)
        try:
            resp = self.client.update_item(
                TableName=self.table_name,
                Key=document_key(tenant_id, document_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            if old is None:  # gone, or an endpoint that does not return the old item: read once
                current = self.get(tenant_id, document_id)
                old_status = current.status.value if current else None
            else:
                old_status = deserialize_item(old).get("status")
            if old_status is None:
                raise NotFound(f"Document {document_id} was not found.") from exc
            raise Conflict(
                f"Document {document_id} is {old_status}; it cannot become {status.value}."
            ) from exc
        return _item_to_doc(resp["Attributes"])

    def stale(self, status: DocumentStatus, updated_before: str) -> Iterator[tuple[str, str]]:
        """(tenant, document) of the documents in `status` last updated before `updated_before`, across
        tenants: a Query on the `status-updated` index (every page), for `domain.sweep`. The index is
        eventually consistent; the sweeper re-reads each document before it changes it."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status AND #updated < :before",
            "ExpressionAttributeNames": {"#status": STATUS_INDEX_PK, "#updated": STATUS_INDEX_SK},
            "ExpressionAttributeValues": {
                ":status": {"S": DocumentStatus(status).value},
                ":before": {"S": updated_before},
            },
        }
        while True:
            resp = self.client.query(**kwargs)
            for item in resp.get("Items", []):
                pk, sk = item[PK]["S"], item[SK]["S"]
                if pk.startswith(TENANT_PREFIX) and sk.startswith(DOC_PREFIX):
                    yield pk[len(TENANT_PREFIX) :], sk[len(DOC_PREFIX) :]
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def delete(self, tenant_id: str, document_id: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key=document_key(tenant_id, document_id))

    def begin_attempt(self, tenant_id: str, document_id: str) -> int:
        """Count a processing attempt durably (atomic ADD); 0 when the document does not exist, as locally."""
        try:
            resp = self.client.update_item(
                TableName=self.table_name,
                Key=document_key(tenant_id, document_id),
                UpdateExpression="ADD #attempts :one",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#attempts": "attempts", "#pk": PK},
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return 0
            raise
        return int(deserialize_item(resp["Attributes"])["attempts"])


def _update_expression(
    status: DocumentStatus, allowed: Sequence[DocumentStatus], fields: dict[str, object]
) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """UpdateItem's update and condition expressions for one transition: set the status, the time and the
    fields (None removes one), only if the item exists and its status is one of `allowed`."""
    names = {"#pk": PK, "#status": "status", "#updated_at": "updated_at"}
    values: dict[str, Any] = {":status": serialize(status.value), ":now": serialize(utc_now_iso())}
    sets = ["#status = :status", "#updated_at = :now"]
    removes = []
    for i, (name, value) in enumerate(sorted(fields.items())):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
        else:
            values[f":f{i}"] = serialize(value)
            sets.append(f"#f{i} = :f{i}")
    for i, s in enumerate(allowed):
        values[f":a{i}"] = serialize(s.value)
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    condition = f"attribute_exists(#pk) AND #status IN ({', '.join(f':a{i}' for i in range(len(allowed)))})"
    return expression, condition, names, values
