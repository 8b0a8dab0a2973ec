"""cmdgate.aws_errors: reading a botocore ClientError's code without trusting its shape."""

from __future__ import annotations

from botocore.exceptions import ClientError

from cmdgate.aws_errors import error_code, is_condition_failure, unavailable_details


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")


def test_a_refused_condition_is_recognised_and_other_codes_are_not() -> None:
    assert is_condition_failure(client_error("ConditionalCheckFailedException"))
    assert not is_condition_failure(client_error("ProvisionedThroughputExceededException"))
    assert error_code(client_error("ThrottlingException")) == "ThrottlingException"


def test_exceptions_without_a_well_formed_response_have_no_code() -> None:
    assert error_code(ValueError("plain")) is None
    odd = ValueError("odd")
    odd.response = {"Error": "ConditionalCheckFailedException"}  # type: ignore[attr-defined]
    assert error_code(odd) is None and not is_condition_failure(odd)
    odd.response = {"Error": {"Code": 400}}  # type: ignore[attr-defined]
    assert error_code(odd) is None


def test_the_details_of_an_unavailable_dependency_name_the_operation_and_its_wrapper() -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
    from botocore.exceptions import ClientError

    throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "UpdateItem")
    assert unavailable_details(throttled) == {
        "error_type": "ClientError",
        "aws_code": "ThrottlingException",
        "operation": "UpdateItem",
    }
    try:
        raise IdempotencyPersistenceLayerError("Failed to delete record from idempotency store") from throttled
    except IdempotencyPersistenceLayerError as wrapped:
        details = unavailable_details(wrapped)
    assert details["operation"] == "UpdateItem"
    assert details["wrapped_by"].startswith("Failed to delete record")
