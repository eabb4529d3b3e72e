"""Lectern's AWS CDK app: one construct per concern under `cdk.constructs`."""
