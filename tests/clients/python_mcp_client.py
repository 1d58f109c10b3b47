"""Drive 2Bot with the official Python MCP SDK (`mcp` on PyPI) over Streamable HTTP.

Usage: python_mcp_client.py URL TOKEN PROMPT [MODE]
MODE is the SDK's `mode=`: `auto` (its default: 2026-07-28, no session) or `legacy` (an
initialize handshake and a session, which the SDK ends with a DELETE as it closes).
Prints one JSON object: the server's name, the tool names, the progress messages that
arrived, and the tool result (text, isError, structuredContent). Exit 0 when the
session ran; assertions live in the Rust test that runs this script.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, token: str, prompt: str, mode: str = "auto") -> None:
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            tools = await client.list_tools()
            result = await client.call_tool(
                "run_codex_prompt", {"prompt": prompt}, progress_callback=on_progress
            )
            server = client.session.server_info if hasattr(client, "session") else None
    print(
        json.dumps(
            {
                "server": getattr(server, "name", None),
                "tools": [t.name for t in tools.tools],
                "progress": progress,
                "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
                "isError": result.is_error,
                "structuredContent": result.structured_content,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
