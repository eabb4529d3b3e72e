from sagemaker_endpoints.cli import main

main()
