"""AWS adapters: the same ports as `lectern.adapters.local`, backed by S3, DynamoDB, OpenSearch, Bedrock and
SageMaker. Only this package (and `lectern.aws`, the Lambda entry points) imports boto3."""
