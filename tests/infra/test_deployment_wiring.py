"""Template facts a deployment depends on that cdk-nag and cfn-lint do not judge (issue 13): the fallback is
invoked through its inference component, and on Serverless the index setup waits for its data-access policy.
Nothing is deployed; the race and SageMaker's refusal themselves can only be seen in an AWS account."""

from __future__ import annotations

from tests.aws.deployment import HANDLER_TEST_CONFIG, Stacks, synth


def test_functions_name_the_fallbacks_inference_component() -> None:
    stacks = Stacks(synth("dev", HANDLER_TEST_CONFIG))
    (component,) = stacks.resources("Service", "AWS::SageMaker::InferenceComponent").values()
    name = component["Properties"]["InferenceComponentName"]
    api = stacks.functions()["lectern.aws.handlers.api.handler"]
    assert api.environment["LECTERN_FALLBACK_INFERENCE_COMPONENT"] == name == "lectern-fallback-ic"
    assert api.environment["LECTERN_FALLBACK_ENDPOINT_NAME"] == "lectern-fallback"


def test_without_a_fallback_the_component_variable_is_empty(dev) -> None:
    for res in dev.raw("Service")["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function" and res["Properties"].get("Handler", "").startswith(
            "lectern."
        ):
            assert res["Properties"]["Environment"]["Variables"]["LECTERN_FALLBACK_INFERENCE_COMPONENT"] == ""


def test_serverless_index_setup_depends_on_its_data_access_policy(prod) -> None:
    resources = prod.raw("Search")["Resources"]
    (setup_id,) = [k for k, r in resources.items() if r["Type"] == "Custom::LecternSearchSetup"]
    policies = {
        k
        for k, r in resources.items()
        if r["Type"] == "AWS::OpenSearchServerless::AccessPolicy" and r["Properties"]["Type"] == "data"
    }
    assert policies, "the setup function's data-access policy"
    assert policies <= set(resources[setup_id]["DependsOn"])
    # and the collection itself
    assert any(
        resources[d]["Type"] == "AWS::OpenSearchServerless::Collection"
        for d in resources[setup_id]["DependsOn"]
    )


def test_setup_function_gets_only_the_http_methods_it_sends(dev) -> None:
    stacks = Stacks({p: dev.raw(p) for p in ("Data", "Search", "Service", "Web")})
    fns = stacks.functions()
    setup = fns["lectern.aws.handlers.setup.on_event"]
    (http,) = [st for st in setup.statements if any(a.startswith("es:") for a in st["Action"])]
    assert sorted(http["Action"]) == ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPut"]
    assert http["Resource"] == ["arn:aws:es:us-east-1:123456789012:domain/lectern-dev/*"]
    for handler, fn in fns.items():
        if handler != setup.handler:
            for st in fn.statements:
                if any(a.startswith("es:") for a in st["Action"]):
                    assert st["Action"] == ["es:ESHttpPost"], (handler, st)
