"""`aws` pack: start a Step Functions execution, put EventBridge events, send an SQS message.

Each command may use one resource only, named by a template parameter (and granted by the
template's IAM to exactly that resource): `AwsPackStateMachineArn`, `AwsPackEventBusArn`,
`AwsPackQueueArn` (settings `aws_pack_*`). A caller may name the resource in its params; any
other than the configured one is refused with 403 before AWS is asked, and a command whose
parameter is empty answers 503 COMMAND_NOT_CONFIGURED.

Every call goes through `calls.guarded`: a circuit breaker per AWS service over the control
table, botocore's standard retries (full jitter, the only retry layer for AWS calls, see
`cmdgate.aws`) and its timeouts inside the command's own; AWS's refusals become clear 4xx/5xx
problems, never a 500.

- `aws.stepfunctions.start`: the execution is named after the cmdgate execution, so a retried
  attempt finds the execution it already started instead of starting a second one; with
  `wait`, polls until the execution ends or the time runs out, and answers its status and output;
- `aws.eventbridge.put_events`: 1-10 entries to the bus; answers each entry's event id;
- `aws.sqs.send`: one message (FIFO queues: group id, deduplicated by the cmdgate execution id).
"""

from __future__ import annotations

from cmdgate_commands.aws.eventbridge import put_events
from cmdgate_commands.aws.sqs import sqs_send
from cmdgate_commands.aws.stepfunctions import stepfunctions_start

__all__ = ["put_events", "sqs_send", "stepfunctions_start"]
