"""Lectern's self-hosted fallback model on SageMaker: quantize, package, benchmark.

`quantize` turns a 7B instruct model into a 4-bit W4A16 checkpoint in compressed-tensors format with
llm-compressor, `package` checks that TGI can load the directory and uploads it to an uncompressed S3 prefix,
and `benchmark` measures an OpenAI/TGI-compatible endpoint. The CDK construct that serves the result is
`cdk.constructs.fallback_model`. Run `python -m sagemaker_endpoints --help`; README.md beside this file says
what was run where.
"""
