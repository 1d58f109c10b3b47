"""One tool call to a 2Bot service through the official Python MCP SDK (`mcp` on PyPI).

Used by tests/suite/instances.rs, which runs three 2Bot instances behind nginx: each
call is a fresh client in the SDK's default mode (2026-07-28, no session), so the load
balancer may send it to any instance, as it would a stateless client's.

Usage: python_cluster_client.py URL TOOL ARGUMENTS_JSON
  URL:            the MCP endpoint (the balancer's, or one instance's)
  TOOL:           e.g. run_codex_prompt, get_codex_run, cancel_codex_run
  ARGUMENTS_JSON: the tool's arguments as one JSON object
The bearer token comes from the environment (TWOBOT_TEST_TOKEN), so the test decides
where tokens come from (static tokens now, a sign-in later) without changing this file.
Prints one JSON object: isError, the text blocks, structuredContent.
"""

import asyncio
import json
import os
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, tool: str, arguments: str) -> None:
    token = os.environ["TWOBOT_TEST_TOKEN"]
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool(tool, json.loads(arguments))
    print(
        json.dumps(
            {
                "isError": result.is_error,
                "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
                "structuredContent": result.structured_content,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
