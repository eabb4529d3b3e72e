"""Search: the OpenSearch domain or collection and its index/pipeline setup. Destroyed by `scripts/pause`."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk.config import LecternConfig
from cdk.constructs.search import SearchBackend


class SearchStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: LecternConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.search = SearchBackend(self, "Search", config=config)
        CfnOutput(self, "Endpoint", value=self.search.endpoint)
