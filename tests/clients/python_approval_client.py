"""A person answering Codex's approval requests through the official Python MCP SDK.

Usage: python_approval_client.py TARGET MODE ANSWER PROMPT [ARGS_JSON]
  TARGET: the server's Streamable HTTP URL, or `stdio:BINARY` to spawn the server on stdio
          (with this process's environment)
  MODE:   legacy (2025-11-25 session: the server sends elicitation/create), modern
          (2026-07-28, the SDK's default: the call comes back input_required and the SDK
          retries it with the answers), or none (legacy, without the elicitation capability)
  ANSWER: accept | uncheck (accept with approve=false) | decline | cancel
  ARGS_JSON: further run_codex_prompt arguments (sandbox, approval_policy, background...);
          with `"background": true` the client follows the run with get_codex_run until it ends
Prints one JSON object: the protocol version, the messages the person was shown, and
the tool result (the final get_codex_run result for a background run). Exit 0 when the
session ran; assertions live in the Rust test.
"""

import asyncio
import json
import os
import sys
import time

from mcp import Client, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def main(target: str, mode: str, answer: str, prompt: str, extra: str = "{}") -> None:
    shown: list[str] = []

    async def elicitation(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        shown.append(getattr(params, "message", ""))
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        if answer == "uncheck":
            return types.ElicitResult(action="accept", content={"approve": False})
        return types.ElicitResult(action=answer)

    kwargs = {} if mode == "none" else {"elicitation_callback": elicitation}
    if mode in ("legacy", "none"):
        kwargs["mode"] = "legacy"
    if target.startswith("stdio:"):
        transport = stdio_client(StdioServerParameters(command=target[6:], env=dict(os.environ)))
    else:
        transport = streamable_http_client(target)
    arguments = {"prompt": prompt, **json.loads(extra)}
    started = time.monotonic()
    async with Client(transport, **kwargs) as client:
        result = await client.call_tool("run_codex_prompt", arguments)
        polls = 0
        if arguments.get("background") and result.structured_content:
            run_id = result.structured_content.get("run_id")
            while polls < 600:
                polls += 1
                result = await client.call_tool("get_codex_run", {"run_id": run_id})
                status = (result.structured_content or {}).get("status")
                if status not in ("working", "input_required", None):
                    break
                await asyncio.sleep(0.1)
        version = client.protocol_version
    print(
        json.dumps(
            {
                "protocol": version,
                "shown": shown,
                "seconds": time.monotonic() - started,
                "polls": polls,
                "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
                "isError": result.is_error,
                "structuredContent": result.structured_content,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
