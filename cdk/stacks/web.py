"""Web: the static UI behind CloudFront, with config.json pointing at this environment's API and user pool."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk.constructs.frontend import Frontend
from cdk.stacks.data import DataStack
from cdk.stacks.service import ServiceStack


class WebStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, data: DataStack, service: ServiceStack, **kwargs
    ):
        super().__init__(scope, construct_id, **kwargs)
        self.frontend = Frontend(
            self,
            "Frontend",
            runtime_config={
                "apiUrl": service.api.rest_api.url,
                "apiKey": service.api.web_key_value,
                "region": service.region,
                "userPoolId": data.users.pool.user_pool_id,
                "userPoolClientId": data.users.web_client.user_pool_client_id,
            },
        )
        CfnOutput(self, "Url", value=f"https://{self.frontend.distribution.distribution_domain_name}")
