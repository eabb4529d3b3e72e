"""Bedrock: the guardrail (with a published version) and least-privilege grants for the models we call.

IAM names each model: Titan embeddings, Nova Lite and Nova Pro (through the us.* cross-region inference
profiles, so the profile ARN and the foundation model in each of the profile's regions), the optional rerank
model, and ApplyGuardrail on our guardrail. No `bedrock:*`, no `foundation-model/*`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aws_cdk import Acknowledgment, Aws, Validations
from aws_cdk import aws_bedrock as bedrock
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk.config import LecternConfig
from lectern.domain.guardrails import GuardrailPolicy

# One policy surface: the Bedrock guardrail's PII entities and actions are the local default policy's
# (lectern.domain.guardrails; entity names are Bedrock's), so a deployment behaves alike in both modes.
PII = {entity: action for entity, action in GuardrailPolicy().pii.items() if action != "NONE"}
CONTENT_FILTERS = ["SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT"]


TOPICS = [
    {
        "name": "PersonalizedInvestmentAdvice",
        "type": "DENY",
        "definition": "Recommendations on which specific securities, funds or assets a person "
        "should buy, sell or hold.",
        "examples": ["Which stocks should I buy this week?", "Should I move my pension into crypto?"],
    }
]


def guardrail_spec(config: LecternConfig) -> dict[str, Any]:
    """The guardrail's whole configuration as plain data: the CfnGuardrail is built from it, and its hash
    names the published version (`config_hash`)."""
    m = config.models
    return {
        "name": f"{config.prefix.lower()}-{config.env_name}",
        "description": "Lectern answers: PII, harmful content, prompt attacks, off-limits topics, grounding",
        "blocked_input_messaging": "Lectern cannot help with that request.",
        "blocked_outputs_messaging": "Lectern cannot answer that from your documents.",
        "content_filters": [
            *({"type": t, "input_strength": "HIGH", "output_strength": "HIGH"} for t in CONTENT_FILTERS),
            # Prompt attacks are judged on input only (output strength must be NONE).
            {"type": "PROMPT_ATTACK", "input_strength": "HIGH", "output_strength": "NONE"},
        ],
        "pii": dict(PII),
        "topics": TOPICS,
        "grounding": {"GROUNDING": m.grounding_threshold, "RELEVANCE": m.relevance_threshold},
    }


def config_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10].upper()


def _base_model(model_id: str) -> str:
    """us.amazon.nova-lite-v1:0 -> amazon.nova-lite-v1:0 (a cross-region profile id carries a geo prefix)."""
    head, _, rest = model_id.partition(".")
    return rest if head in {"us", "eu", "apac", "us-gov", "global"} else model_id


class Models(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LecternConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        spec = guardrail_spec(config)
        self.guardrail_config_hash = config_hash(spec)
        content, pii, topics, grounding = (
            spec["content_filters"],
            spec["pii"],
            spec["topics"],
            spec["grounding"],
        )
        self.guardrail = bedrock.CfnGuardrail(
            self,
            "Guardrail",
            name=spec["name"],
            description=spec["description"],
            blocked_input_messaging=spec["blocked_input_messaging"],
            blocked_outputs_messaging=spec["blocked_outputs_messaging"],
            content_policy_config=bedrock.CfnGuardrail.ContentPolicyConfigProperty(
                filters_config=[
                    bedrock.CfnGuardrail.ContentFilterConfigProperty(
                        type=f["type"],
                        input_strength=f["input_strength"],
                        output_strength=f["output_strength"],
                    )
                    for f in content
                ]
            ),
            sensitive_information_policy_config=bedrock.CfnGuardrail.SensitiveInformationPolicyConfigProperty(
                pii_entities_config=[
                    bedrock.CfnGuardrail.PiiEntityConfigProperty(type=e, action=a) for e, a in pii.items()
                ]
            ),
            topic_policy_config=bedrock.CfnGuardrail.TopicPolicyConfigProperty(
                topics_config=[
                    bedrock.CfnGuardrail.TopicConfigProperty(
                        name=topic["name"],
                        type=topic["type"],
                        definition=topic["definition"],
                        examples=topic["examples"],
                    )
                    for topic in topics
                ]
            ),
            contextual_grounding_policy_config=bedrock.CfnGuardrail.ContextualGroundingPolicyConfigProperty(
                filters_config=[
                    bedrock.CfnGuardrail.ContextualGroundingFilterConfigProperty(
                        type=kind, threshold=threshold
                    )
                    for kind, threshold in grounding.items()
                ]
            ),
        )
        # A guardrail version is an immutable snapshot, published when the resource is created. Its logical
        # id carries the hash of the whole guardrail configuration: an edit makes a new version resource (a
        # new published version) and LECTERN_GUARDRAIL_VERSION follows it; CloudFormation deletes the old
        # version resource once the functions point at the new one. No edit: same id, no new version.
        self.guardrail_version = bedrock.CfnGuardrailVersion(
            self,
            f"GuardrailVersion{self.guardrail_config_hash}",
            guardrail_identifier=self.guardrail.attr_guardrail_id,
            description=f"Published by the CDK app for guardrail configuration {self.guardrail_config_hash}",
        )

    # -- ARNs -----------------------------------------------------------------------------------------------

    def model_arns(self, model_id: str) -> list[str]:
        base = _base_model(model_id)
        if base == model_id:  # an in-region foundation model
            return [f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}::foundation-model/{model_id}"]
        regions = self.config.models.inference_profile_regions
        return [
            f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:inference-profile/{model_id}",
            *(f"arn:{Aws.PARTITION}:bedrock:{r}::foundation-model/{base}" for r in regions),
        ]

    def environment(self) -> dict[str, str]:
        m = self.config.models
        return {
            "LECTERN_EMBEDDING_MODEL_ID": m.embedding_model_id,
            "LECTERN_EMBEDDING_DIMENSION": str(m.embedding_dimension),
            "LECTERN_GENERATION_MODEL_ID": m.generation_model_id,
            "LECTERN_STRONG_MODEL_ID": m.strong_model_id,
            "LECTERN_PROMPT_VERSION": m.prompt_version,
            "LECTERN_GUARDRAIL_ID": self.guardrail.attr_guardrail_id,
            "LECTERN_GUARDRAIL_VERSION": self.guardrail_version.attr_version,
            "LECTERN_RERANK_MODEL_ARN": m.rerank_model_arn or "",
        }

    # -- grants ---------------------------------------------------------------------------------------------

    def grant_embed(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeTitanEmbeddings",
                actions=["bedrock:InvokeModel"],
                resources=self.model_arns(self.config.models.embedding_model_id),
            )
        )

    def grant_generate(self, role: iam.IRole) -> None:
        m = self.config.models
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeNova",
                actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                resources=[*self.model_arns(m.generation_model_id), *self.model_arns(m.strong_model_id)],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ApplyGuardrail",
                actions=["bedrock:ApplyGuardrail"],
                resources=[self.guardrail.attr_guardrail_arn],
            )
        )
        if m.rerank_model_arn:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="InvokeRerankModel", actions=["bedrock:InvokeModel"], resources=[m.rerank_model_arn]
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="Rerank", actions=["bedrock:Rerank"], resources=["*"])
            )
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="bedrock:Rerank has no resource-level "
                    "permissions; the model it may use is limited by the InvokeModel statement.",
                )
            )
