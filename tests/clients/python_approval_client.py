"""A person answering Codex's approval requests through the official Python MCP SDK.

Usage: python_approval_client.py URL MODE ANSWER PROMPT
  MODE:   legacy (2025-11-25 session: the server sends elicitation/create) or modern
          (2026-07-28, the SDK's default: the call comes back input_required and the SDK
          retries it with the answers)
  ANSWER: accept | uncheck (accept with approve=false) | decline | cancel
Prints one JSON object: the protocol version, the messages the person was shown, and
the tool result. Exit 0 when the session ran; assertions live in the Rust test.
"""

import asyncio
import json
import sys

from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, mode: str, answer: str, prompt: str) -> None:
    shown: list[str] = []

    async def elicitation(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        shown.append(getattr(params, "message", ""))
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        if answer == "uncheck":
            return types.ElicitResult(action="accept", content={"approve": False})
        return types.ElicitResult(action=answer)

    kwargs = {"elicitation_callback": elicitation}
    if mode == "legacy":
        kwargs["mode"] = "legacy"
    async with Client(streamable_http_client(url), **kwargs) as client:
        result = await client.call_tool("run_codex_prompt", {"prompt": prompt})
        version = client.protocol_version
    print(
        json.dumps(
            {
                "protocol": version,
                "shown": shown,
                "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
                "isError": result.is_error,
                "structuredContent": result.structured_content,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
