"""The REST API: Cognito user-pool authorizer on every route but health, API keys + usage plans (per-client
throttling and quotas; keys are metering, Cognito is the authorization), request validation with JSON-schema
models, access logs, X-Ray, and a regional WAF web ACL with a rate-based rule.

The web UI gets its own key (`web`, sent by the page; not a secret, like any browser-held key) whose value is
this stack's id, so the frontend config can carry it without a custom resource. Machine clients get keys
added to the `machine` plan (`aws apigateway create-api-key` + `create-usage-plan-key`).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Fn, RemovalPolicy, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from cdk.config import ApiConfig

# A literal, not the stage's Ref: the alarms that roll the canary back read the stage's metrics, and a Ref would
# make alarm -> stage -> deployment -> method -> alias -> deployment group -> alarm a cycle (cfn-lint E3004)
STAGE_NAME = "v1"
ROUTES = {  # path -> methods (the contract of lectern.aws.handlers.api)
    "v1/health": ["GET"],
    "v1/documents": ["GET", "POST"],
    "v1/documents/{document_id}": ["GET", "DELETE"],
    "v1/documents/{document_id}/pages/{page}/image": ["GET"],
    "v1/formats": ["GET"],
    "v1/query": ["POST"],
    "v1/search": ["POST"],
    "v1/feedback": ["POST"],
    "v1/conversations": ["GET"],
    "v1/conversations/{conversation_id}": ["GET", "DELETE"],
}
SCHEMAS = {  # (path, method) -> request body JSON schema (draft 4), mirroring lectern.api.schemas
    ("v1/documents", "POST"): {
        "type": "object",
        "required": ["filename", "size_bytes"],
        "properties": {
            "filename": {"type": "string", "minLength": 1, "maxLength": 1024},
            "content_type": {"type": "string", "maxLength": 255},
            "size_bytes": {"type": "integer", "minimum": 1},
        },
    },
    ("v1/query", "POST"): {
        "type": "object",
        "required": ["question"],
        "properties": {"question": {"type": "string", "minLength": 1, "maxLength": 2000}},
    },
    ("v1/search", "POST"): {
        "type": "object",
        "required": ["query"],
        "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 2000}},
    },
    ("v1/feedback", "POST"): {"type": "object"},
}


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        user_pool: cognito.IUserPool,
        config: ApiConfig,
        log_retention: logs.RetentionDays,
        name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=name,
            description="Lectern document question answering",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # page images (GET .../pages/{page}/image, fetched with Accept: image/png) leave the Lambda base64
            # encoded; API Gateway turns them back into bytes only for a binary media type
            binary_media_types=["image/png"],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # bodies carry document text and questions
                tracing_enabled=True,
                throttling_rate_limit=config.throttle_rate_limit,
                throttling_burst_limit=config.throttle_burst_limit,
                metrics_enabled=True,
            ),
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=config.cors_allow_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Api-Key", "Accept"],
            ),
        )
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self,
            "Authorizer",
            cognito_user_pools=[user_pool],
            identity_source="method.request.header.Authorization",
        )
        validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(handler, proxy=True)
        self.methods: list[apigw.Method] = []
        for path, methods in ROUTES.items():
            resource = self.rest_api.root.resource_for_path(path)
            for method in methods:
                public = path == "v1/health"
                schema = SCHEMAS.get((path, method))
                models = None
                if schema:
                    model = self.rest_api.add_model(
                        _model_name(method, path),
                        content_type="application/json",
                        schema=_schema(schema),
                    )
                    models = {"application/json": model}
                self.methods.append(
                    resource.add_method(
                        method,
                        integration,
                        authorizer=None if public else self.authorizer,
                        authorization_type=apigw.AuthorizationType.NONE
                        if public
                        else apigw.AuthorizationType.COGNITO,
                        api_key_required=not public,
                        request_validator=validator,
                        request_models=models,
                        request_parameters=(
                            {"method.request.path.document_id": True} if "{document_id}" in path else None
                        ),
                    )
                )
        stage = self.rest_api.deployment_stage
        # Keys: one for the web page (value = this stack's id), plans for the page and for machine clients.
        self.web_key_value = Fn.select(2, Fn.split("/", Aws.STACK_ID))
        web_key = self.rest_api.add_api_key(
            "WebKey", value=self.web_key_value, description="Lectern web page"
        )
        web_plan = self.rest_api.add_usage_plan(
            "WebPlan",
            name=f"{name}-web",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=stage)],
        )
        web_plan.add_api_key(web_key)
        self.machine_plan = self.rest_api.add_usage_plan(
            "MachinePlan",
            name=f"{name}-machine",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.machine_rate_limit, burst_limit=config.machine_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=config.machine_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=stage)],
        )
        self.web_acl = self._waf(config.waf_rate_limit_per_5min, name)
        wafv2.CfnWebACLAssociation(
            self, "WafAssociation", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        Validations.of(self.rest_api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG4",
                reason="Only GET /v1/health (a liveness probe with no data) "
                "and the CORS preflight OPTIONS methods are unauthenticated; every other route has the "
                "Cognito authorizer.",
            ),
            Acknowledgment(
                id="AwsSolutions-COG4",
                reason="Same methods as APIG4: health and CORS preflight cannot carry a Cognito token.",
            ),
        )

    def _waf(self, rate_limit: int, name: str) -> wafv2.CfnWebACL:
        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        def managed(priority: int, rule_name: str) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=rule_name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=rule_name
                    )
                ),
                visibility_config=visibility(rule_name),
            )

        return wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{name}-api",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"{name}-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP", evaluation_window_sec=300
                        )
                    ),
                    visibility_config=visibility("RateLimitPerIp"),
                ),
                managed(1, "AWSManagedRulesCommonRuleSet"),
                managed(2, "AWSManagedRulesKnownBadInputsRuleSet"),
            ],
        )


def _schema(schema: dict) -> apigw.JsonSchema:
    types = {
        "object": apigw.JsonSchemaType.OBJECT,
        "string": apigw.JsonSchemaType.STRING,
        "integer": apigw.JsonSchemaType.INTEGER,
    }
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        type=types[schema["type"]],
        required=schema.get("required"),
        properties={k: _schema(v) for k, v in schema.get("properties", {}).items()} or None,
        min_length=schema.get("minLength"),
        max_length=schema.get("maxLength"),
        minimum=schema.get("minimum"),
    )


def _model_name(method: str, path: str) -> str:
    """POST v1/query -> PostQueryBody (API Gateway model names are alphanumeric)."""
    words = path.replace("v1/", "").replace("{", "").replace("}", "").replace("_", "/").split("/")
    return method.title() + "".join(w.title() for w in words) + "Body"
