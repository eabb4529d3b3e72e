"""Write (or check) the committed OpenAPI document: python scripts/openapi.py --write docs/openapi.json"""

import argparse
import sys
from pathlib import Path

from lectern.api.openapi import openapi_json

parser = argparse.ArgumentParser()
parser.add_argument("--write", type=Path)
parser.add_argument("--check", type=Path)
args = parser.parse_args()
text = openapi_json()
if args.write:
    args.write.write_text(text)
elif args.check:
    if args.check.read_text() != text:
        sys.exit(f"{args.check} is out of date: run `make openapi`")
else:
    sys.stdout.write(text)
