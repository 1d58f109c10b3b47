"""An example MCP tasks client for 2Bot, on the official Python MCP SDK (`mcp`).

The SDK (2.3) has no client for the MCP tasks extension, so this one adds the little it
needs on top of the SDK's own session (protocol 2026-07-28 over Streamable HTTP):

1. It advertises the extension, `io.modelcontextprotocol/tasks`, so every request's
   `_meta` carries it among the client's capabilities; 2Bot then answers
   `run_codex_prompt` with a task (`resultType: "task"`, a `taskId`) at once instead of
   holding the request open for the minutes Codex takes.
2. It polls `tasks/get` every `pollIntervalMs` (the server's hint). A task method names
   its task in the `Mcp-Name` HTTP header, which the server checks against
   `params.taskId`; the SDK sends that header for any request class that declares
   `name_param`, so `TasksGet` below declares `name_param = "taskId"`.
3. Once the task is no longer `working`, it fetches `tasks/result` (the method of MCP
   2025-11-25; under 2026-07-28 the same result is also folded into the last
   `tasks/get`).

Usage: python_tasks_client.py URL PROMPT [TOKEN]
  URL:    2Bot's MCP endpoint, e.g. http://127.0.0.1:8000/mcp
  PROMPT: the task for Codex
  TOKEN:  a bearer token, when the server requires one
Prints one JSON object: the protocol version, the task as created, every status and
status message `tasks/get` showed, and the `tasks/result` answer (a `CallToolResult`).
"""

import asyncio
import json
import sys
from typing import Any

from pydantic import TypeAdapter

from mcp import Client, types
from mcp.client import advertise
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"

# Results are read as plain JSON: the SDK has no types for task results.
RAW = TypeAdapter(dict[str, Any])


class ToolsCall(types.Request[dict[str, Any], str]):
    """`tools/call`, whose answer may be a task (the SDK's own `call_tool` expects a result)."""

    name_param = "name"


class TasksGet(types.Request[dict[str, Any], str]):
    """`tasks/get`: the `Mcp-Name` header carries `params.taskId`."""

    name_param = "taskId"


class TasksResult(types.Request[dict[str, Any], str]):
    """`tasks/result`: waits for the task's end, then returns its `CallToolResult`."""


async def main(url: str, prompt: str, token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = create_mcp_http_client(headers=headers)
    async with http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, extensions=[advertise(TASKS_EXTENSION)]) as client:
            session = client.session
            created = await session.send_request(
                ToolsCall(
                    method="tools/call",
                    params={"name": "run_codex_prompt", "arguments": {"prompt": prompt}},
                ),
                RAW,
            )
            if created.get("resultType") != "task":
                raise SystemExit(f"the server did not start a task: {json.dumps(created)}")
            task_id = created["taskId"]
            seen: list[dict[str, Any]] = []
            task = created
            while task.get("status") == "working":
                await asyncio.sleep(task.get("pollIntervalMs", 1000) / 1000)
                task = await session.send_request(
                    TasksGet(method="tasks/get", params={"taskId": task_id}), RAW
                )
                seen.append({"status": task.get("status"), "message": task.get("statusMessage")})
            result = await session.send_request(
                TasksResult(method="tasks/result", params={"taskId": task_id}), RAW
            )
            version = client.protocol_version
    print(
        json.dumps(
            {
                "protocolVersion": version,
                "created": created,
                "polled": seen,
                "lastGet": task,
                "result": result,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
