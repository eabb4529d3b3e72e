"""Lectern on AWS: settings, wiring and the Lambda entry points (`lectern.aws.handlers.*`)."""
