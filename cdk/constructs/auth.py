"""The Cognito user pool (kept while paused: users are data) and the web client."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_cognito as cognito
from constructs import Construct

TENANT_ATTRIBUTE = "tenant_id"  # the API reads the claim custom:tenant_id


class Users(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.pool = cognito.UserPool(
            self,
            "Pool",
            self_sign_up_enabled=False,  # an administrator invites users into a tenant
            sign_in_aliases=cognito.SignInAliases(email=True),
            custom_attributes={
                TENANT_ATTRIBUTE: cognito.StringAttribute(min_len=1, max_len=64, mutable=False)
            },
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.web_client = self.pool.add_client(
            "WebClient",
            # user_password: the page (plain ES module, no SDK) signs in with InitiateAuth USER_PASSWORD_AUTH over
            # TLS; SRP would need a client library. Refresh tokens renew the session.
            auth_flows=cognito.AuthFlow(user_srp=True, user_password=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True)
            .with_custom_attributes(TENANT_ATTRIBUTE),
        )
        Validations.of(self.pool).acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG2",
                reason="MFA is optional (TOTP), not required: users are invited by an administrator and "
                "a tenant may require it through its own policy; required MFA blocks machine users.",
            ),
            Acknowledgment(
                id="AwsSolutions-COG3",
                reason="Advanced security (threat protection) needs the Cognito Plus plan, a per-user "
                "cost; self sign-up is off and WAF rate-limits the API.",
            ),
        )
