"""Lambda entry points. Each module builds its dependencies once per cold start (from `AwsSettings`) and keeps
its handler functions thin: decorators, parse, call the domain, map errors in one place."""
