"""The web UI: `frontend/` in a private bucket served by CloudFront through Origin Access Control, plus
`config.json` (API URL, web API key, Cognito ids) written at deploy time."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


class Frontend(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, runtime_config: dict[str, str]) -> None:
        super().__init__(scope, construct_id)
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,  # CloudFront standard logs need ACLs
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        self.bucket = s3.Bucket(
            self,
            "Site",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="site/",
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,  # rebuilt from the repo on deploy
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        # index.html links /static/app.js and /static/styles.css (the paths `lectern up` serves): the assets go
        # under static/, the page and its config at the root. Neither deployment prunes the other's keys.
        self.assets = s3deploy.BucketDeployment(
            self,
            "DeployAssets",
            sources=[s3deploy.Source.asset(str(FRONTEND), exclude=["index.html"])],
            destination_bucket=self.bucket,
            destination_key_prefix="static/",
            prune=False,
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[
                s3deploy.Source.asset(str(FRONTEND), exclude=["*", "!index.html"]),
                s3deploy.Source.json_data("config.json", runtime_config),
            ],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/index.html", "/config.json", "/static/*"],
            prune=False,
        )
        self.deployment.node.add_dependency(self.assets)
        Validations.of(self.distribution).acknowledge(
            Acknowledgment(
                id="AwsSolutions-CFR1",
                reason="No geo restriction: documents are tenants' own and "
                "users travel; access control is Cognito on the API.",
            ),
            Acknowledgment(
                id="AwsSolutions-CFR2",
                reason="The static UI holds no data; the API behind it has a "
                "regional WAF. A CloudFront web ACL (us-east-1 only) would add a fixed monthly cost.",
            ),
            Acknowledgment(
                id="AwsSolutions-CFR4",
                reason="The default *.cloudfront.net certificate cannot pin a "
                "minimum TLS version; a custom domain with TLSv1.2_2021 is configured where one exists.",
            ),
        )
        Validations.of(self.logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket itself; logging it into itself would loop.",
            )
        )
