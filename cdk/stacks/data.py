"""Data: the documents bucket, the table and the user pool. Never destroyed by `scripts/pause`."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk.config import LecternConfig
from cdk.constructs.auth import Users
from cdk.constructs.storage import DocumentStore


class DataStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: LecternConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, termination_protection=config.env_name == "prod", **kwargs)
        self.store = DocumentStore(
            self,
            "Store",
            name=f"{config.prefix.lower()}-{config.env_name}",
            cors_allow_origins=config.api.cors_allow_origins,
        )
        self.users = Users(self, "Users")
        CfnOutput(self, "DocumentsBucket", value=self.store.bucket.bucket_name)
        CfnOutput(self, "TableName", value=self.store.table.table_name)
        CfnOutput(self, "ConversationsTableName", value=self.store.conversations.table_name)
        CfnOutput(self, "UserPoolId", value=self.users.pool.user_pool_id)
