"""Create the first admin key of a fresh deployment, with the deployer's AWS credentials.

    python -m cmdgate.bootstrap --stack-name cmdgate          # looks up the stack's KeysTable
    python -m cmdgate.bootstrap --table <keys table name>

It refuses once an admin key was bootstrapped (a conditional write, so two
concurrent runs cannot both succeed). The key is printed once and never stored.
"""

from __future__ import annotations

import argparse
import sys

import boto3

from cmdgate.auth import ApiKeyStore, BootstrapRefused


def keys_table_name(stack_name: str, session: boto3.session.Session) -> str:
    """The physical name of the stack's KeysTable."""
    resource = session.client("cloudformation").describe_stack_resource(
        StackName=stack_name, LogicalResourceId="KeysTable"
    )
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def main(argv: list[str] | None = None) -> int:
    """Create and print the first admin key."""
    parser = argparse.ArgumentParser(prog="python -m cmdgate.bootstrap", description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack-name")
    target.add_argument("--table")
    parser.add_argument("--name", default="bootstrap-admin")
    args = parser.parse_args(argv)
    session = boto3.session.Session()
    table_name = args.table or keys_table_name(args.stack_name, session)
    store = ApiKeyStore(session.resource("dynamodb").Table(table_name))
    try:
        api_key, record = store.bootstrap_admin(args.name)
    except BootstrapRefused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 1
    print(f"admin key {record.key_id} created; store it now, it is not shown again:\n{api_key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
