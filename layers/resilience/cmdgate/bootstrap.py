"""Create the first admin key of a fresh deployment, with the deployer's AWS credentials.

    python -m cmdgate.bootstrap --stack-name cmdgate [--region eu-west-1] [--profile admin]
    python -m cmdgate.bootstrap --table <keys table name>

It refuses once an admin key was bootstrapped (a conditional write, so two
concurrent runs cannot both succeed). The key is printed once and never stored.
Anything that stops it (no credentials, no such profile, stack or table, AWS
refusing) is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

from cmdgate.auth import ApiKeyStore, BootstrapRefused

# A CLI should give up in seconds, not botocore's minute of connection retries.
_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})


class BootstrapError(Exception):
    """Why the bootstrap could not run, as one line for the operator."""


def keys_table_name(stack_name: str, session: boto3.session.Session) -> str:
    """The physical name of the stack's KeysTable."""
    client = session.client("cloudformation", config=_CLIENT_CONFIG)
    try:
        resource = client.describe_stack_resource(StackName=stack_name, LogicalResourceId="KeysTable")
    except ClientError as exc:
        if _code(exc) == "ValidationError":
            raise BootstrapError(
                f"stack {stack_name!r} or its KeysTable not found in {session.region_name}: {_message(exc)}"
            ) from None
        raise
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or "Unknown"


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def _session(profile: str | None, region: str | None) -> boto3.session.Session:
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise BootstrapError(f"AWS profile {profile!r} not found in the AWS config files") from None
    if session.region_name is None:
        raise BootstrapError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    if session.get_credentials() is None:
        raise BootstrapError("no AWS credentials found: pass --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID")
    return session


def run(args: argparse.Namespace) -> tuple[str, str]:
    """Create the admin key; returns (key_id, api_key)."""
    session = _session(args.profile, args.region)
    table_name = args.table or keys_table_name(args.stack_name, session)
    table = session.resource("dynamodb", config=_CLIENT_CONFIG).Table(table_name)
    try:
        api_key, record = ApiKeyStore(table).bootstrap_admin(args.name)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            raise BootstrapError(f"keys table {table_name!r} not found in {session.region_name}") from None
        raise
    return record.key_id, api_key


def main(argv: list[str] | None = None) -> int:
    """Create and print the first admin key."""
    parser = argparse.ArgumentParser(prog="python -m cmdgate.bootstrap", description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack-name")
    target.add_argument("--table")
    parser.add_argument("--name", default="bootstrap-admin")
    parser.add_argument("--region", help="AWS region of the stack (default: the profile's or AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", help="AWS profile to use (default: AWS_PROFILE or the default credentials)")
    args = parser.parse_args(argv)
    try:
        key_id, api_key = run(args)
    except BootstrapRefused as refused:
        return _fail(f"refused: {refused}")
    except BootstrapError as exc:
        return _fail(str(exc))
    except NoCredentialsError:
        return _fail("no AWS credentials found: pass --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID")
    except NoRegionError:
        return _fail("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    except ClientError as exc:
        operation = exc.operation_name or "request"
        return _fail(f"AWS refused {operation}: {_code(exc)}: {_message(exc)}")
    except BotoCoreError as exc:
        return _fail(f"AWS could not be reached: {exc}")
    print(f"admin key {key_id} created; store it now, it is not shown again:\n{api_key}")
    return 0


def _fail(line: str) -> int:
    print(f"cmdgate.bootstrap: {' '.join(line.split())}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
